//! Recycled f32 buffers. A training step allocates the same large activations and
//! gradients every step; taking them fresh from the system costs page faults and
//! kernel zeroing on every touch, so large buffers freed by tensors wait here, keyed by
//! length, for the next allocation of the same size.
//!
//! The cache never lets live tensors plus cached buffers exceed the most bytes live
//! tensors have ever held at once ([`peak_live_bytes`]): caching makes a training loop
//! faster without raising its peak memory. [`release_cached_memory`] hands it all back.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use rayon::prelude::*;

use crate::storage::{live_bytes, peak_live_bytes};

/// Buffers shorter than this (256 KiB) come from the allocator directly: it serves
/// them from its own free lists without page faults.
const MIN_POOLED_LEN: usize = 1 << 16;

#[derive(Default)]
struct Cache {
    by_len: HashMap<usize, Vec<Vec<f32>>>,
    bytes: usize,
}

impl Cache {
    /// Frees cached buffers until `extra` more bytes fit under the peak.
    fn make_room(&mut self, extra: usize) {
        let budget = peak_live_bytes().saturating_sub(live_bytes());
        while self.bytes + extra > budget {
            let Some(&len) = self.by_len.keys().next() else { return };
            let buffers = self.by_len.entry(len).or_default();
            if buffers.pop().is_some() {
                self.bytes -= len * 4;
            }
            if buffers.is_empty() {
                self.by_len.remove(&len);
            }
        }
    }
}

static CACHE: Mutex<Option<Cache>> = Mutex::new(None);

fn cache() -> MutexGuard<'static, Option<Cache>> {
    CACHE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A buffer of `len` elements whose contents are unspecified (finite leftovers of an
/// earlier tensor): for kernels that write every element.
pub fn take(len: usize) -> Vec<f32> {
    if len >= MIN_POOLED_LEN {
        let mut guard = cache();
        let cached = guard.as_mut().and_then(|c| {
            let buffer = c.by_len.get_mut(&len)?.pop()?;
            c.bytes -= len * 4;
            Some(buffer)
        });
        if let Some(buffer) = cached {
            return buffer;
        }
        if let Some(cache) = guard.as_mut() {
            cache.make_room(len * 4);
        }
    }
    vec![0.0; len]
}

/// A buffer of `len` zeros.
pub fn zeroed(len: usize) -> Vec<f32> {
    let mut buffer = take(len);
    buffer.par_chunks_mut(MIN_POOLED_LEN).for_each(|chunk| chunk.fill(0.0));
    buffer
}

/// Returns a buffer no longer needed, for reuse by [`take`] and [`zeroed`].
pub fn recycle(buffer: Vec<f32>) {
    let len = buffer.len();
    if len < MIN_POOLED_LEN || buffer.capacity() != len {
        return;
    }
    let mut guard = cache();
    let cache = guard.get_or_insert_with(Cache::default);
    if live_bytes() + cache.bytes + len * 4 <= peak_live_bytes() {
        cache.bytes += len * 4;
        cache.by_len.entry(len).or_default().push(buffer);
    }
}

/// Bytes held in the cache of freed CPU buffers (not counted in `live_bytes`).
pub fn cached_bytes() -> usize {
    cache().as_ref().map_or(0, |c| c.bytes)
}

/// Frees every cached CPU buffer, for programs that are done training and want the
/// memory back.
pub fn release_cached_memory() {
    *cache() = None;
}
