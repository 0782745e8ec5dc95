//! The GPU device the wgpu tests run on.

use kiln_tensor::Device;

/// The shared GPU device, or `None` (with the reason printed) when there is none and
/// `KILN_REQUIRE_GPU` is unset.
pub fn gpu() -> Option<Device> {
    match kiln_wgpu::shared() {
        Ok((device, summary)) => {
            if let Ok(wanted) = std::env::var("WGPU_BACKEND") {
                assert!(
                    summary.backend.eq_ignore_ascii_case(&wanted),
                    "WGPU_BACKEND={wanted} but the adapter runs on {}",
                    summary.backend
                );
            }
            Some(device)
        }
        Err(err) if std::env::var_os("KILN_REQUIRE_GPU").is_some() => {
            panic!("KILN_REQUIRE_GPU is set: {err}")
        }
        Err(err) => {
            eprintln!("skipping wgpu test: {err}");
            None
        }
    }
}
