//! Picking the device from `--backend` and `--threads` (and, in a data-parallel run,
//! the process's GPU).

use kiln_cpu::CpuDevice;
use kiln_dist::DataParallel;
use kiln_tensor::{Device, Result as KilnResult};
use kiln_wgpu::AdapterSummary;

use crate::args::BackendChoice;

/// Returns the device for `choice` and a line saying what was picked. The CPU device
/// gets its own pool of `threads` threads when given (else rayon's global pool, one
/// thread per core). `auto` takes a real GPU adapter and never a software one
/// (lavapipe runs real WGSL at CPU speed, slower than the CPU backend). The processes
/// of a data-parallel run share the machine's GPUs out by rank.
pub fn pick(
    choice: BackendChoice,
    threads: Option<usize>,
    parallel: &DataParallel,
) -> Result<(Device, String), String> {
    let gpu = || -> KilnResult<(Device, AdapterSummary)> {
        if parallel.size() > 1 { kiln_wgpu::open_for_rank(parallel.rank()) } else { kiln_wgpu::shared() }
    };
    let cpu_device = match threads {
        Some(threads) => Device::cpu_with_threads(threads).map_err(|err| err.to_string())?,
        None => Device::cpu(),
    };
    let cpu = || cpu_device.clone();
    match choice {
        BackendChoice::Cpu => Ok((cpu(), format!("{} (--backend cpu)", cpu().name()))),
        BackendChoice::Wgpu => {
            let (device, adapter) = gpu().map_err(|err| format!("--backend wgpu: {err}"))?;
            let software = if adapter.is_cpu { "; a software adapter: correct but slow" } else { "" };
            Ok((device.clone(), format!("{} (--backend wgpu{software})", device.name())))
        }
        BackendChoice::Auto => match gpu() {
            Ok((device, adapter)) if !adapter.is_cpu => {
                Ok((device.clone(), format!("{} (auto: a GPU adapter was found)", device.name())))
            }
            Ok((_, adapter)) => Ok((
                cpu(),
                format!("{} (auto: the only GPU adapter, {}, is a software one)", cpu().name(), adapter.name),
            )),
            Err(err) => Ok((cpu(), format!("{} (auto: no GPU: {err})", cpu().name()))),
        },
    }
}
