//! GPU timestamps: a timing window reports each kernel family's dispatches, GPU time
//! and (for the GEMM passes) GFLOP/s, one window at a time, and leaves results intact.

mod common;

use common::gpu;
use kiln_cpu::CpuDevice;
use kiln_tensor::{Device, Tensor};
use kiln_wgpu::{Autotune, Clock, WgpuBackend};

#[test]
fn a_timing_window_reports_gpu_time_and_gflops_per_kernel_family() {
    if gpu().is_none() {
        return;
    }
    // A device of its own: the shared one runs other tests' dispatches meanwhile.
    let (device, _) = kiln_wgpu::open_with(Autotune::Off).unwrap();
    let backend = device.backend().as_any().downcast_ref::<WgpuBackend>().unwrap();
    let cpu = Device::cpu();
    let (m, k, n) = (67, 45, 131);
    let a = Tensor::randn([m, k], 1, &cpu);
    let b = Tensor::randn([k, n], 2, &cpu);
    let want = a.matmul(&b).relu().to_vec().unwrap();
    let (ga, gb) = (a.to_device(&device).unwrap(), b.to_device(&device).unwrap());
    ga.matmul(&gb).relu().to_vec().unwrap(); // compiles the pipelines outside the window
    if !backend.start_kernel_timing() {
        assert_eq!(
            backend.autotune_clock(),
            Clock::WallClock,
            "no timestamps, so the tuner uses the wall clock"
        );
        assert_eq!(backend.kernel_times().unwrap(), None);
        return;
    }
    assert_eq!(backend.autotune_clock(), Clock::GpuTimestamps);
    assert!(!backend.start_kernel_timing(), "one window at a time");
    let got = ga.matmul(&gb).relu();
    let times = backend.kernel_times().unwrap().expect("a window was open");
    let got = got.to_vec().unwrap();
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "{g} vs {w}");
    }
    assert_eq!(times.untimed_dispatches, 0);
    let families: Vec<(&str, u64)> = times.families.iter().map(|f| (f.family, f.dispatches)).collect();
    assert_eq!(families, [("elementwise", 1), ("matmul", 1)]);
    let matmul = &times.families[1];
    assert_eq!(matmul.flops, 2.0 * (m * k * n) as f64);
    assert!(matmul.gpu_ms > 0.0 && matmul.gpu_ms < 10_000.0, "{} ms", matmul.gpu_ms);
    assert!(matmul.gflops_per_s().is_some_and(|g| g.is_finite() && g > 0.0));
    assert_eq!(times.families[0].gflops_per_s(), None, "elementwise work is not counted");
    assert_eq!(backend.kernel_times().unwrap(), None, "the window is closed");
    assert!(backend.start_kernel_timing(), "a new window opens after the last one closed");
    assert_eq!(backend.kernel_times().unwrap().map(|t| t.families.len()), Some(0));
}
