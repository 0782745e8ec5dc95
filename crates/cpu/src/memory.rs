//! `HostMemory`: one CPU device's accounting of its tensors' bytes and its cache of
//! recycled f32 buffers. A training step allocates the same large activations and
//! gradients every step; taking them fresh from the system costs page faults and
//! kernel zeroing on every touch, so large buffers freed by tensors wait here, keyed by
//! length, for the next allocation of the same size.
//!
//! The cache never lets live tensors plus cached buffers exceed the most bytes live
//! tensors have ever held at once ([`HostMemory::peak_live_bytes`]): caching makes a
//! training loop faster without raising its peak memory.
//! [`HostMemory::release_cached_memory`] hands it all back. Each device has its own, so
//! two devices never see each other's buffers or counts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use rayon::prelude::*;

/// Buffers shorter than this (256 KiB) come from the allocator directly: it serves
/// them from its own free lists without page faults.
const MIN_POOLED_LEN: usize = 1 << 16;

/// Cached buffers by length.
#[derive(Debug, Default)]
struct Cache {
    by_len: HashMap<usize, Vec<Vec<f32>>>,
    bytes: usize,
}

/// The memory of one CPU device: live and peak bytes of its tensors, and its buffer
/// cache.
#[derive(Debug, Default)]
pub struct HostMemory {
    cache: Mutex<Cache>,
    live: AtomicUsize,
    peak: AtomicUsize,
}

impl HostMemory {
    /// Bytes held by this device's live tensors.
    pub fn live_bytes(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// The most bytes this device's live tensors have held at once.
    pub fn peak_live_bytes(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// Bytes held in the cache of freed buffers (not counted in `live_bytes`).
    pub fn cached_bytes(&self) -> usize {
        self.cache().bytes
    }

    /// Frees every cached buffer, for programs that are done training and want the
    /// memory back.
    pub fn release_cached_memory(&self) {
        *self.cache() = Cache::default();
    }

    fn cache(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts `bytes` more as held by live tensors.
    pub(crate) fn add_live(&self, bytes: usize) {
        let live = self.live.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak.fetch_max(live, Ordering::Relaxed);
    }

    /// Counts `bytes` fewer as held by live tensors.
    pub(crate) fn remove_live(&self, bytes: usize) {
        self.live.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// A buffer of `len` elements whose contents are unspecified (finite leftovers of an
    /// earlier tensor): for kernels that write every element.
    pub(crate) fn take(&self, len: usize) -> Vec<f32> {
        if len >= MIN_POOLED_LEN {
            let mut cache = self.cache();
            if let Some(buffer) = cache.by_len.get_mut(&len).and_then(Vec::pop) {
                cache.bytes -= len * 4;
                return buffer;
            }
            self.make_room(&mut cache, len * 4);
        }
        vec![0.0; len]
    }

    /// A buffer of `len` zeros.
    pub(crate) fn zeroed(&self, len: usize) -> Vec<f32> {
        let mut buffer = self.take(len);
        buffer.par_chunks_mut(MIN_POOLED_LEN).for_each(|chunk| chunk.fill(0.0));
        buffer
    }

    /// Returns a buffer no longer needed, for reuse by [`HostMemory::take`].
    pub(crate) fn recycle(&self, buffer: Vec<f32>) {
        let len = buffer.len();
        if len < MIN_POOLED_LEN || buffer.capacity() != len {
            return;
        }
        let mut cache = self.cache();
        if self.live_bytes() + cache.bytes + len * 4 <= self.peak_live_bytes() {
            cache.bytes += len * 4;
            cache.by_len.entry(len).or_default().push(buffer);
        }
    }

    /// Frees cached buffers until `extra` more bytes fit under the peak.
    fn make_room(&self, cache: &mut Cache, extra: usize) {
        let budget = self.peak_live_bytes().saturating_sub(self.live_bytes());
        while cache.bytes + extra > budget {
            let Some(&len) = cache.by_len.keys().next() else { return };
            let buffers = cache.by_len.entry(len).or_default();
            if buffers.pop().is_some() {
                cache.bytes -= len * 4;
            }
            if buffers.is_empty() {
                cache.by_len.remove(&len);
            }
        }
    }
}
