//! The portable micro-kernel: the same 6×16 tile in plain Rust, which the compiler
//! vectorizes for whatever the build targets (SSE2 on x86-64, NEON on aarch64). Used
//! where the CPU lacks AVX2 and FMA.

use super::{MR, NR};

/// See [`super::packed::MicroKernel`].
///
/// # Safety
/// `a` must hold `k·MR` values, `b` `k·NR`, and `c` an `MR×NR` block with row stride
/// `rsc`.
pub unsafe fn kernel(k: usize, a: *const f32, b: *const f32, c: *mut f32, rsc: usize, accumulate: bool) {
    // SAFETY: the sizes are guaranteed by the caller.
    let (a, b) = unsafe { (std::slice::from_raw_parts(a, k * MR), std::slice::from_raw_parts(b, k * NR)) };
    let mut acc = [[0.0f32; NR]; MR];
    for (a, b) in a.chunks_exact(MR).zip(b.chunks_exact(NR)) {
        for (row, &ar) in acc.iter_mut().zip(a) {
            for (sum, &bv) in row.iter_mut().zip(b) {
                *sum += ar * bv;
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        // SAFETY: row `r` of the caller's block.
        let out = unsafe { std::slice::from_raw_parts_mut(c.add(r * rsc), NR) };
        for (o, v) in out.iter_mut().zip(row) {
            *o = if accumulate { *o + v } else { *v };
        }
    }
}
