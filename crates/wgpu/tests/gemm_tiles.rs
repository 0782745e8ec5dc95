//! Every GEMM tile shape the autotuner may pick, on matrix products and the three
//! convolution passes: each against the CPU on odd shapes (not multiples of any tile;
//! narrow, skinny and deep products among them, and split-K with slices that are
//! uneven or empty), and every shape without split-K bit-identical to the default one.
//! Then the tuner itself: it tunes a shape class once, remembers the choice in its
//! cache file, and a second device reads it back instead of tuning again.

mod common;

use common::gpu;
use kiln_cpu::CpuDevice;
use kiln_tensor::{Device, Tensor};
use kiln_wgpu::{Autotune, GemmTile, WgpuBackend};

fn cpu() -> Device {
    Device::cpu()
}

fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape.to_vec(), seed, &cpu())
}

/// Outputs and input gradients of matrix products and a convolution, computed on
/// `device` from the same CPU-drawn inputs.
fn gemm_outputs(device: &Device) -> Vec<(String, Vec<f32>)> {
    let mut outputs = Vec::new();
    let mut record = |name: String, inputs: Vec<Tensor>, f: &dyn Fn(&[Tensor]) -> Tensor| {
        let leaves: Vec<Tensor> =
            inputs.iter().map(|t| t.to_device(device).unwrap().with_requires_grad()).collect();
        let out = f(&leaves);
        let weights = randn(out.dims(), 77).to_device(device).unwrap();
        let grads = out.mul(&weights).sum().backward();
        outputs.push((format!("{name} forward"), out.to_vec().unwrap()));
        for (i, leaf) in leaves.iter().enumerate() {
            outputs.push((format!("{name} gradient {i}"), grads.get(leaf).unwrap().to_vec().unwrap()));
        }
    };
    // Odd, narrow (few rows), skinny (few columns) and deep (long K) products.
    for (m, k, n) in [(67, 45, 131), (7, 45, 131), (133, 9, 3), (5, 1031, 6), (1, 1, 1)] {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let a = randn(&if ta { [k, m] } else { [m, k] }, 1);
            let b = randn(&if tb { [n, k] } else { [k, n] }, 2);
            let name = format!("matmul {m}×{k}×{n} {ta} {tb}");
            record(name, vec![a, b], &|x| x[0].matmul_with(&x[1], ta, tb));
        }
    }
    let (x, w, b) = (randn(&[3, 5, 13, 11], 3), randn(&[7, 5, 3, 3], 4).mul_scalar(0.1), randn(&[7], 5));
    record("conv 3×3/2 pad 1".into(), vec![x, w, b], &|t| t[0].conv2d(&t[1], Some(&t[2]), 2, 1));
    let (x, w, b) = (randn(&[2, 3, 17, 19], 6), randn(&[70, 3, 5, 5], 7).mul_scalar(0.1), randn(&[70], 8));
    record("conv 5×5 pad 2, 70 filters".into(), vec![x, w, b], &|t| {
        t[0].conv2d_relu(&t[1], Some(&t[2]), 1, 2)
    });
    outputs
}

fn close(name: &str, got: &[f32], want: &[f32]) {
    let diff: f64 = got.iter().zip(want).map(|(a, b)| f64::from(a - b).powi(2)).sum::<f64>().sqrt();
    let norm: f64 = want.iter().map(|b| f64::from(*b).powi(2)).sum::<f64>().sqrt();
    assert!(diff <= 1e-4 * norm.max(1e-6), "{name}: relative error {}", diff / norm.max(1e-6));
}

#[test]
fn every_tile_shape_matches_the_cpu_and_without_split_k_the_default_bit_for_bit() {
    if gpu().is_none() {
        return;
    }
    let want = gemm_outputs(&cpu());
    let default = gemm_outputs(&kiln_wgpu::open_with(Autotune::Fixed(GemmTile::DEFAULT)).unwrap().0);
    for tile in GemmTile::CANDIDATES {
        let (device, _) = kiln_wgpu::open_with(Autotune::Fixed(tile)).unwrap();
        let got = gemm_outputs(&device);
        for (((name, g), (_, w)), (_, d)) in got.iter().zip(&want).zip(&default) {
            close(&format!("{tile:?} {name}"), g, w);
            if tile.splits == 1 {
                assert!(g == d, "{tile:?} {name}: not bit-identical to the default tile shape");
            }
        }
    }
}

#[test]
fn the_tuner_tunes_a_shape_once_and_remembers_it() {
    if gpu().is_none() {
        return;
    }
    let cache = std::env::temp_dir().join(format!("kiln-autotune-test-{}.tsv", std::process::id()));
    let _ = std::fs::remove_file(&cache);
    let tuned_device = || kiln_wgpu::open_with(Autotune::On { cache: Some(cache.clone()) }).unwrap().0;
    let figures = |device: &Device| {
        let backend = device.backend().as_any().downcast_ref::<WgpuBackend>().unwrap();
        (backend.shapes_tuned(), backend.autotune_choices())
    };
    let (a, b) = (randn(&[67, 45], 1), randn(&[45, 131], 2));
    let want = a.matmul(&b).to_vec().unwrap();

    let first = tuned_device();
    let product = |device: &Device| a.to_device(device).unwrap().matmul(&b.to_device(device).unwrap());
    close("tuned matmul", &product(&first).to_vec().unwrap(), &want);
    close("tuned matmul again", &product(&first).to_vec().unwrap(), &want);
    let (tuned, choices) = figures(&first);
    assert_eq!(tuned, 1, "one shape class, tuned once");
    assert_eq!(choices.len(), 1, "{choices:?}");
    assert!(choices[0].starts_with("matmul 128×256×64 → "), "m×n×k rounded up: {choices:?}");
    let lines = std::fs::read_to_string(&cache).unwrap();
    assert_eq!(lines.lines().count(), 1, "{lines}");

    let second = tuned_device();
    close("matmul with the cached choice", &product(&second).to_vec().unwrap(), &want);
    let (tuned, loaded) = figures(&second);
    assert_eq!((tuned, loaded), (0, choices), "the second device reads the choice instead of tuning");
    std::fs::remove_file(&cache).unwrap();
}

#[test]
fn the_fma_probe_reports_a_finite_positive_rate() {
    let Some(device) = gpu() else { return };
    let backend = device.backend().as_any().downcast_ref::<WgpuBackend>().unwrap();
    let gflops = backend.fma_peak_gflops().unwrap();
    assert!(gflops.is_finite() && gflops > 0.1, "{gflops} GFLOP/s");
    device.synchronize().unwrap();
}
