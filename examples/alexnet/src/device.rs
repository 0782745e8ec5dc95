//! Picking the device from `--backend` and `--threads`.

use kiln_cpu::CpuDevice;
use kiln_tensor::Device;

use crate::args::BackendChoice;

/// Sizes the CPU thread pool, then returns the device for `choice` and a line saying
/// what was picked.
pub fn pick(choice: BackendChoice, threads: Option<usize>) -> Result<(Device, String), String> {
    if let Some(threads) = threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .map_err(|err| format!("cannot start {threads} CPU threads: {err}"))?;
    }
    match choice {
        BackendChoice::Cpu => Ok((Device::cpu(), "cpu (chosen with --backend cpu)".into())),
        BackendChoice::Auto => {
            let device = Device::cpu();
            let line = format!("{} (auto: no GPU backend is built into this version)", device.name());
            Ok((device, line))
        }
        BackendChoice::Wgpu => {
            Err("--backend wgpu is not available yet: the wgpu backend has not landed; use --backend cpu"
                .into())
        }
    }
}
