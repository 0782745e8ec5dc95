//! The GPU's fp32 FMA ceiling, measured with `fma_peak.wgsl`: the yardstick kiln-bench
//! divides the GEMM and convolution GFLOP/s by.

use std::time::Instant;

use kiln_tensor::Result;

use crate::backend::{WIDTH, WgpuBackend};
use crate::bindings::FmaPeakBindings;
use crate::kernels::Kernel;
use crate::params::FmaPeakParams;

/// Workgroups of the probe: about a million invocations, enough to fill any GPU.
const GROUPS: u32 = 4096;
/// Floating-point operations per invocation and iteration (eight vec4 FMAs).
const FLOPS_PER_ITERATION: f64 = 64.0;
/// The probe grows until one run takes at least this long, then keeps the best of
/// three runs.
const MIN_SECONDS: f64 = 0.02;

impl WgpuBackend {
    /// The fp32 FMA throughput of the GPU in GFLOP/s (wall clock around a wait for
    /// the GPU, so launch overhead counts against it: a slight underestimate).
    pub fn fma_peak_gflops(&self) -> Result<f64> {
        let sink = self.f32s(1024, "fma peak");
        let mut iterations = 64u32;
        let time = |iterations: u32| -> Result<f64> {
            let params = FmaPeakParams { iterations };
            self.gpu.wait_idle()?;
            let start = Instant::now();
            self.gpu.dispatch(
                Kernel::FmaPeak,
                "fma peak",
                &params,
                &FmaPeakBindings { sink: Some(&sink) }.slots(),
                [GROUPS, 1, 1],
            );
            self.gpu.synchronize()?;
            Ok(start.elapsed().as_secs_f64())
        };
        while time(iterations)? < MIN_SECONDS && iterations < 1 << 24 {
            iterations *= 2;
        }
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            best = best.min(time(iterations)?);
        }
        let flops = f64::from(GROUPS) * WIDTH as f64 * f64::from(iterations) * FLOPS_PER_ITERATION;
        Ok(flops / best / 1e9)
    }
}
