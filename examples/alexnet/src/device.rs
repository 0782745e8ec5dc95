//! Picking the device from `--backend` and `--threads`.

use kiln_cpu::CpuDevice;
use kiln_tensor::Device;

use crate::args::BackendChoice;

/// Sizes the CPU thread pool, then returns the device for `choice` and a line saying
/// what was picked. `auto` takes a real GPU adapter and never a software one (lavapipe
/// runs real WGSL at CPU speed, slower than the CPU backend).
pub fn pick(choice: BackendChoice, threads: Option<usize>) -> Result<(Device, String), String> {
    if let Some(threads) = threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .map_err(|err| format!("cannot start {threads} CPU threads: {err}"))?;
    }
    let cpu = || Device::cpu();
    match choice {
        BackendChoice::Cpu => Ok((cpu(), format!("{} (--backend cpu)", cpu().name()))),
        BackendChoice::Wgpu => {
            let (device, adapter) = kiln_wgpu::shared().map_err(|err| format!("--backend wgpu: {err}"))?;
            let software = if adapter.is_cpu { "; a software adapter: correct but slow" } else { "" };
            Ok((device.clone(), format!("{} (--backend wgpu{software})", device.name())))
        }
        BackendChoice::Auto => match kiln_wgpu::shared() {
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
