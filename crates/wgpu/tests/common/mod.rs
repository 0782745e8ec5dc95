//! The GPU device the wgpu tests run on.

use kiln_tensor::Device;

/// Whether a missing adapter fails the tests instead of skipping them: under CI (which
/// installs a Vulkan driver) or when `KILN_REQUIRE_GPU` is set.
fn gpu_required() -> bool {
    std::env::var_os("KILN_REQUIRE_GPU").is_some() || std::env::var_os("CI").is_some()
}

/// The backend the adapter must run on: `WGPU_BACKEND` when set; Vulkan under CI on
/// Linux, so that wgpu cannot fall back silently to its GL backend there.
fn required_backend() -> Option<String> {
    let ci_on_linux = cfg!(target_os = "linux") && std::env::var_os("CI").is_some();
    std::env::var("WGPU_BACKEND").ok().or_else(|| ci_on_linux.then(|| "vulkan".to_string()))
}

/// The shared GPU device, or `None` (with the reason printed) when there is none and
/// no GPU is required.
pub fn gpu() -> Option<Device> {
    match kiln_wgpu::shared() {
        Ok((device, summary)) => {
            if let Some(wanted) = required_backend() {
                assert!(
                    summary.backend.eq_ignore_ascii_case(&wanted),
                    "WGPU_BACKEND={wanted} but the adapter runs on {}",
                    summary.backend
                );
            }
            Some(device)
        }
        Err(err) if gpu_required() => panic!("a GPU adapter is required (CI or KILN_REQUIRE_GPU): {err}"),
        Err(err) => {
            eprintln!("skipping wgpu test: {err}");
            None
        }
    }
}
