//! # kiln-wgpu
//!
//! Kiln's GPU backend: every [`kiln_tensor::Backend`] kernel as a WGSL compute shader
//! (the files in the repository's `shaders/` folder), run through `wgpu` on Vulkan,
//! Metal or DX12.
//!
//! - Tensors stay on the GPU; a training step's dispatches are recorded into one command
//!   encoder and submitted at a sync point (reading a value back, `synchronize`) or
//!   every 1,024 dispatches. Nothing is read back unless asked for.
//! - Buffers come from a pool keyed by size class and return to it when tensors drop;
//!   pipelines are compiled once and cached.
//! - Convolutions are implicit GEMMs (im2col computed on the fly inside the tiled GEMM
//!   kernel), so no unrolled matrix is ever stored; pooling and conv input gradients are
//!   gathers, so no atomics are needed.
//! - GEMM tile shapes are autotuned per adapter (GPU timestamps where the adapter has
//!   them) and cached on disk; [`WgpuBackend::start_kernel_timing`] and
//!   [`WgpuBackend::kernel_times`] give any stretch of work's GPU time per kernel family.
//! - Errors wgpu reports (validation, out of memory, device lost) are collected and
//!   returned as [`kiln_tensor::KilnError::Device`] from the next read or
//!   `synchronize`, naming the op.
//!
//! Choose an adapter with `KILN_WGPU_ADAPTER` (an index or part of its name) and a
//! backend with `WGPU_BACKEND` (`vulkan`, `metal`, `dx12`); [`open_for_rank`] spreads
//! the processes of a data-parallel run over the machine's GPUs.
//!
//! ```no_run
//! use kiln_tensor::{Device, Tensor};
//! use kiln_wgpu::WgpuDevice;
//!
//! let device = Device::wgpu()?;
//! let x = Tensor::from_vec([2], vec![1.0, -2.0], &device);
//! assert_eq!(x.relu().to_vec()?, vec![1.0, 0.0]);
//! # Ok::<(), kiln_tensor::KilnError>(())
//! ```

mod autotune;
mod backend;
mod bindings;
mod buffer_pool;
mod gemm_tiles;
mod gpu;
mod kernels;
mod op_codes;
mod ops;
mod params;
mod peak;
mod sgd_group;
mod timestamps;

use std::sync::{Arc, OnceLock};

use kiln_tensor::{Device, KilnError, Result};

pub use autotune::{Autotune, Clock};
pub use backend::WgpuBackend;
pub use gemm_tiles::{GemmTile, Lanes};
pub use gpu::{AdapterSummary, WorkCounters};
pub use timestamps::{FamilyTime, KernelTimes, TIMED_DISPATCHES};

/// Opens a new device on the chosen adapter; returns it with what the adapter is.
pub fn open() -> Result<(Device, AdapterSummary)> {
    open_on(gpu::Gpu::open(None, None)?)
}

/// Opens a new device on the chosen adapter with GEMM tile shapes picked as `autotune`
/// says (instead of `KILN_AUTOTUNE` and the adapter's kind).
pub fn open_with(autotune: Autotune) -> Result<(Device, AdapterSummary)> {
    open_on(gpu::Gpu::open(None, Some(autotune))?)
}

/// Opens a new device for process `rank` of a multi-process (data-parallel) run: the
/// machine's hardware adapters are shared out by rank modulo their count, unless
/// `KILN_WGPU_ADAPTER` names one.
pub fn open_for_rank(rank: usize) -> Result<(Device, AdapterSummary)> {
    open_on(gpu::Gpu::open(Some(rank), None)?)
}

fn open_on(gpu: gpu::Gpu) -> Result<(Device, AdapterSummary)> {
    let backend = WgpuBackend::new(gpu);
    let summary = backend.adapter().clone();
    Ok((Device::new(Arc::new(backend)), summary))
}

/// The process-wide wgpu device, opened on first use.
pub fn shared() -> Result<(Device, AdapterSummary)> {
    static SHARED: OnceLock<std::result::Result<(Device, AdapterSummary), String>> = OnceLock::new();
    SHARED.get_or_init(|| open().map_err(device_message)).clone().map_err(KilnError::Device)
}

/// `Device::wgpu()`: the shared GPU device.
pub trait WgpuDevice: Sized {
    /// The process-wide wgpu device, or why there is none.
    fn wgpu() -> Result<Self>;
}

impl WgpuDevice for Device {
    fn wgpu() -> Result<Device> {
        shared().map(|(device, _)| device)
    }
}

/// The message of a device error without its "device error: " prefix, which
/// `KilnError::Device`'s display adds again.
fn device_message(err: KilnError) -> String {
    match err {
        KilnError::Device(message) => message,
        other => other.to_string(),
    }
}
