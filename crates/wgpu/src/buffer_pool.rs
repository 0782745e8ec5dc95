//! Pooled GPU buffers: tensors take buffers from free lists keyed by size class and give
//! them back when dropped, so a training step allocates nothing once the pool has
//! warmed up. Size classes are powers of two split in four (at most 25% slack).

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use kiln_tensor::{DType, Storage};

/// Smallest buffer handed out, in bytes.
const MIN_CLASS: u64 = 256;

/// The size class that holds `bytes`.
pub fn size_class(bytes: u64) -> u64 {
    let bytes = bytes.max(MIN_CLASS);
    let step = (bytes.next_power_of_two() / 8).max(MIN_CLASS / 4);
    bytes.div_ceil(step) * step
}

/// The size of the buffer a pool whose buffers may hold at most `largest` bytes hands
/// out for `bytes` (at most `largest`): its size class, capped at `largest` so a tensor
/// just under the adapter's limit never gets a buffer over it.
fn pooled_size(bytes: u64, largest: u64) -> u64 {
    size_class(bytes).min(largest).max(bytes)
}

/// Free buffers by size class, and counters of what the pool holds.
#[derive(Debug)]
pub struct BufferPool {
    device: wgpu::Device,
    usage: wgpu::BufferUsages,
    largest: u64,
    free: Mutex<HashMap<u64, Vec<wgpu::Buffer>>>,
    allocated: AtomicU64,
    created: AtomicU64,
}

impl BufferPool {
    /// A pool of buffers with `usage` on `device`, none larger than `largest` bytes
    /// (the largest binding or buffer the adapter allows, a multiple of 4).
    pub fn new(device: &wgpu::Device, usage: wgpu::BufferUsages, largest: u64) -> Self {
        BufferPool {
            device: device.clone(),
            usage,
            largest,
            free: Mutex::new(HashMap::new()),
            allocated: AtomicU64::new(0),
            created: AtomicU64::new(0),
        }
    }

    /// A buffer of at least `bytes` bytes (contents unspecified).
    pub fn acquire(&self, bytes: u64) -> wgpu::Buffer {
        let class = pooled_size(bytes, self.largest);
        if let Some(buffer) = self.free.lock().expect("pool lock").get_mut(&class).and_then(Vec::pop) {
            return buffer;
        }
        self.allocated.fetch_add(class, Ordering::Relaxed);
        self.created.fetch_add(1, Ordering::Relaxed);
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("kiln pooled buffer"),
            size: class,
            usage: self.usage,
            mapped_at_creation: false,
        })
    }

    /// Takes `buffer` back for reuse.
    pub fn release(&self, buffer: wgpu::Buffer) {
        self.free.lock().expect("pool lock").entry(buffer.size()).or_default().push(buffer);
    }

    /// Bytes of all buffers the pool has created (in use or free).
    pub fn allocated_bytes(&self) -> u64 {
        self.allocated.load(Ordering::Relaxed)
    }

    /// How many buffers the pool has created.
    pub fn buffers_created(&self) -> u64 {
        self.created.load(Ordering::Relaxed)
    }
}

/// A tensor's memory on the GPU: a pooled buffer, returned to its pool on drop.
#[derive(Debug)]
pub struct GpuStorage {
    buffer: Option<wgpu::Buffer>,
    len: usize,
    dtype: DType,
    buffers: Arc<BufferPool>,
}

impl GpuStorage {
    /// Wraps a buffer from `pool` holding `len` elements of `dtype`.
    pub fn new(buffer: wgpu::Buffer, len: usize, dtype: DType, buffers: &Arc<BufferPool>) -> Self {
        GpuStorage { buffer: Some(buffer), len, dtype, buffers: buffers.clone() }
    }

    /// The buffer.
    pub fn buffer(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().expect("present until drop")
    }

    /// Bytes of data (not of the buffer, which may be larger).
    pub fn bytes(&self) -> u64 {
        (self.len * 4) as u64
    }
}

impl Drop for GpuStorage {
    fn drop(&mut self) {
        if let Some(buffer) = self.buffer.take() {
            self.buffers.release(buffer);
        }
    }
}

impl Storage for GpuStorage {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn len(&self) -> usize {
        self.len
    }

    fn dtype(&self) -> DType {
        self.dtype
    }
}

#[cfg(test)]
mod tests {
    use super::{pooled_size, size_class};

    #[test]
    fn a_buffer_near_the_adapters_limit_is_not_rounded_past_it() {
        // NVIDIA's largest binding, 2³² − 1 bytes, in whole f32s.
        let largest = (u32::MAX as u64) / 4 * 4;
        assert_eq!(size_class(largest), 1 << 32, "the class alone would exceed the limit");
        assert_eq!(pooled_size(largest, largest), largest);
        assert_eq!(pooled_size(largest - 1000, largest), largest);
        assert_eq!(pooled_size(1000, largest), size_class(1000));
    }

    #[test]
    fn size_classes_waste_at_most_a_quarter() {
        assert_eq!(size_class(1), 256);
        assert_eq!(size_class(257), 320);
        for bytes in [1000u64, 4096, 5000, 143_327_232, 1 << 30] {
            let class = size_class(bytes);
            assert!(class >= bytes && class <= bytes + bytes / 4 + 64, "{bytes} -> {class}");
            assert_eq!(class % 4, 0);
        }
    }
}
