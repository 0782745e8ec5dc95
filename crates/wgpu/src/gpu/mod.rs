//! `Gpu`: one wgpu device and queue with everything Kiln keeps around it — the buffer
//! pools, the kernel cache, the recorder that batches dispatches into one command
//! encoder until a sync point, and the errors wgpu reported.
//!
//! Its methods live by job: `open` (choosing the adapter, opening the device),
//! `dispatch` (storage, recording dispatches and copies, submitting), `timing` (work
//! counters and GPU timestamp windows), `sync` (waiting, errors, reading back).
//!
//! Ordering rules (see docs/wgpu.md): `queue.write_buffer` takes effect at the next
//! submit, before that submit's recorded commands. So every host upload first submits
//! whatever is recorded, and each encoder's parameter blocks live in their own arena
//! buffer written just before that encoder is submitted.

mod dispatch;
mod open;
mod sync;
mod timing;

use std::sync::{Arc, Mutex};

use kiln_tensor::{KilnError, StorageRef};

use crate::autotune::Tuner;
use crate::buffer_pool::{BufferPool, GpuStorage};
use crate::kernels::{KernelCache, PARAMS_SIZE};
use crate::timestamps::{TimestampQueries, Window};

/// Dispatches an encoder collects before it is submitted.
const DISPATCHES_PER_SUBMIT: usize = 1024;
/// Bytes of one parameter arena.
const ARENA_BYTES: u64 = DISPATCHES_PER_SUBMIT as u64 * PARAMS_SIZE;

/// What the adapter is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterSummary {
    /// The adapter's name, e.g. `NVIDIA H200` or `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub name: String,
    /// `Vulkan`, `Metal` or `Dx12`.
    pub backend: String,
    /// `DiscreteGpu`, `IntegratedGpu`, `Cpu`, ….
    pub device_type: String,
    /// A software rasterizer (lavapipe, WARP): real WGSL, CPU speed.
    pub is_cpu: bool,
    /// The largest tensor one kernel can bind, in bytes: the adapter's largest storage
    /// binding and largest buffer, whichever is smaller, in whole `f32`s.
    pub max_binding_bytes: u64,
}

/// Dispatches recorded but not yet submitted.
struct Recorder {
    encoder: Option<wgpu::CommandEncoder>,
    params: Vec<u8>,
    arenas: [wgpu::Buffer; 2],
    current: usize,
    counters: WorkCounters,
    /// The open timing window, if any.
    window: Option<Window>,
}

/// What the device has been asked to do since it opened: for measuring a training
/// step by the difference of two readings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkCounters {
    /// Compute dispatches recorded.
    pub dispatches: u64,
    /// Command buffers submitted to the queue.
    pub submits: u64,
    /// Host time spent recording dispatches and submitting them (not waiting for the
    /// GPU), in nanoseconds.
    pub host_nanos: u64,
}

impl WorkCounters {
    /// The work done between `earlier` and `self`.
    pub fn since(self, earlier: WorkCounters) -> WorkCounters {
        WorkCounters {
            dispatches: self.dispatches - earlier.dispatches,
            submits: self.submits - earlier.submits,
            host_nanos: self.host_nanos - earlier.host_nanos,
        }
    }
}

/// A wgpu device with Kiln's pools, kernels and recorder.
pub struct Gpu {
    pub device: wgpu::Device,
    queue: wgpu::Queue,
    pub summary: AdapterSummary,
    max_binding: u64,
    pub buffers: Arc<BufferPool>,
    staging: BufferPool,
    /// Picks the GEMM kernels' tile shapes.
    pub tuner: Tuner,
    kernels: KernelCache,
    recorder: Mutex<Recorder>,
    dummies: Vec<wgpu::Buffer>,
    errors: Arc<Mutex<Vec<String>>>,
    /// Timestamp queries, where the adapter has them.
    timestamps: Option<TimestampQueries>,
    /// Parameter tensors one SGD dispatch updates on this adapter.
    pub sgd_group_size: u32,
}

fn device_error(message: impl Into<String>) -> KilnError {
    KilnError::Device(message.into())
}

/// The GPU storage behind a tensor; storage of another backend is a bug.
pub fn gpu_storage(storage: &StorageRef) -> &GpuStorage {
    storage
        .as_any()
        .downcast_ref::<GpuStorage>()
        .expect("a tensor from another device reached the wgpu backend; move it with to_device()")
}

/// Workgroup counts for `items` invocations of a 256-wide kernel (or `items`
/// workgroups when `per_group` is 1), laid out in x then y.
pub fn grid(items: usize, per_group: usize) -> [u32; 3] {
    let groups = items.div_ceil(per_group).max(1);
    let x = groups.min(65_535);
    [x as u32, groups.div_ceil(x) as u32, 1]
}
