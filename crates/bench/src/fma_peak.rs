//! The machine's FMA ceiling: every thread of the pool runs a loop of independent
//! fused multiply-adds on registers only (no memory traffic), with the widest vectors
//! the CPU has. Kernels are reported as a fraction of this number.

use std::time::Instant;

use rayon::prelude::*;

/// Independent accumulator chains: enough to cover FMA latency × FMA ports.
const CHAINS: usize = 12;

/// Iterations of the register loop per timing.
const ITERATIONS: usize = 20_000_000;

/// What the probe measured.
pub struct FmaPeak {
    /// The vector instructions used.
    pub isa: &'static str,
    /// Threads that ran the loop at once.
    pub threads: usize,
    /// Billions of floating-point operations per second (an FMA counts as two), summed
    /// over the threads: the best of three timings.
    pub gflops: f64,
}

/// Runs `chains` on `threads` threads at once, three times; the best total rate.
fn measure(isa: &'static str, lanes: usize, chains: fn(usize) -> f32, threads: usize) -> FmaPeak {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("probe threads");
    let flops = (2 * lanes * CHAINS * ITERATIONS * threads) as f64;
    let best = (0..3)
        .map(|_| {
            let start = Instant::now();
            let sink: f32 = pool.install(|| (0..threads).into_par_iter().map(|_| chains(ITERATIONS)).sum());
            std::hint::black_box(sink);
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    FmaPeak { isa, threads, gflops: flops / best / 1e9 }
}

/// Measures the FMA peak of `threads` threads with the widest instructions this CPU has.
pub fn fma_peak(threads: usize) -> FmaPeak {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F is present (checked above).
            return measure("avx512f", 16, |n| unsafe { x86::avx512(n) }, threads);
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: AVX2 and FMA are present (checked above).
            return measure("avx2+fma", 8, |n| unsafe { x86::avx2(n) }, threads);
        }
    }
    measure("scalar", 1, scalar, threads)
}

/// The portable loop: scalar `mul_add`, which the compiler keeps as FMAs where the
/// baseline has them.
fn scalar(iterations: usize) -> f32 {
    let mut acc = [0.0f32; CHAINS];
    let (x, y) = (std::hint::black_box(0.999_f32), std::hint::black_box(1e-7_f32));
    for _ in 0..iterations {
        for a in &mut acc {
            *a = a.mul_add(x, y);
        }
    }
    acc.iter().sum()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::CHAINS;

    /// `iterations` rounds of `CHAINS` independent 16-lane FMAs.
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn avx512(iterations: usize) -> f32 {
        let (x, y) = (_mm512_set1_ps(std::hint::black_box(0.999)), _mm512_set1_ps(1e-7));
        let mut acc = [_mm512_setzero_ps(); CHAINS];
        for _ in 0..iterations {
            for a in &mut acc {
                *a = _mm512_fmadd_ps(*a, x, y);
            }
        }
        acc.iter().map(|a| _mm512_reduce_add_ps(*a)).sum()
    }

    /// `iterations` rounds of `CHAINS` independent 8-lane FMAs.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn avx2(iterations: usize) -> f32 {
        let (x, y) = (_mm256_set1_ps(std::hint::black_box(0.999)), _mm256_set1_ps(1e-7));
        let mut acc = [_mm256_setzero_ps(); CHAINS];
        for _ in 0..iterations {
            for a in &mut acc {
                *a = _mm256_fmadd_ps(*a, x, y);
            }
        }
        let mut lanes = [0.0f32; 8];
        acc.iter()
            .map(|a| {
                // SAFETY: `lanes` holds 8 floats.
                unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), *a) };
                lanes.iter().sum::<f32>()
            })
            .sum()
    }
}
