//! Per-thread buffers, grown on demand and reused across calls, so convolutions
//! allocate their per-group GEMM layouts once per worker thread rather than once per
//! group. (A kernel's temporary buffer counted in its device's memory is
//! `memory::Scratch`, a different thing.)

use std::cell::RefCell;

thread_local! {
    static THREAD_BUFFER: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's buffer of at least `len` elements (contents
/// unspecified). Not re-entrant: `f` must not call `with_thread_buffer` itself.
pub fn with_thread_buffer<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    THREAD_BUFFER.with(|cell| {
        let mut buffer = cell.borrow_mut();
        if buffer.len() < len {
            buffer.resize(len, 0.0);
        }
        f(&mut buffer[..len])
    })
}
