//! Helpers shared by the integration tests: every test written once and run on every
//! device ([`test_on_every_device!`], the body receiving the device it runs on), seeded
//! inputs on a given device, and the finite-difference gradient check. Nothing here
//! picks a device implicitly: every helper that makes a tensor takes one.

#![allow(dead_code)]

use kiln::prelude::*;
use kiln::tensor::Rng;

/// The shared GPU device, or `None` (with the reason printed) when there is none and no
/// GPU is required: under CI (which installs a Vulkan driver) or with `KILN_REQUIRE_GPU`
/// set, a missing adapter fails the test, and under CI on Linux the adapter must be a
/// Vulkan one.
pub fn gpu() -> Option<Device> {
    let ci = std::env::var_os("CI").is_some();
    match kiln_wgpu::shared() {
        Ok((device, adapter)) => {
            let wanted = std::env::var("WGPU_BACKEND")
                .ok()
                .or_else(|| (ci && cfg!(target_os = "linux")).then(|| "vulkan".into()));
            if let Some(wanted) = wanted {
                assert!(
                    adapter.backend.eq_ignore_ascii_case(&wanted),
                    "wanted {wanted}, the adapter runs on {}",
                    adapter.backend
                );
            }
            Some(device)
        }
        Err(err) if ci || std::env::var_os("KILN_REQUIRE_GPU").is_some() => {
            panic!("a GPU adapter is required (CI or KILN_REQUIRE_GPU): {err}")
        }
        Err(err) => {
            eprintln!("skipping the wgpu variant: {err}");
            None
        }
    }
}

/// Writes a test once and runs it on every device: `test_on_every_device! { fn
/// name(device: &Device) { .. } }` becomes the tests `name::cpu` and `name::wgpu`, each
/// calling the body with its device. Attributes such as `#[should_panic]` apply to both.
#[macro_export]
macro_rules! test_on_every_device {
    ($($(#[$meta:meta])* fn $name:ident($device:ident: &Device) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                fn body($device: &kiln::prelude::Device) $body

                $(#[$meta])*
                #[test]
                fn cpu() {
                    body(&kiln::prelude::Device::cpu());
                }

                $(#[$meta])*
                #[test]
                fn wgpu() {
                    if let Some(gpu) = $crate::common::gpu() {
                        body(&gpu);
                    }
                }
            }
        )*
    };
}

/// Normal(0, 1) values of `shape` from `seed` on `device`.
pub fn randn(device: &Device, shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape.to_vec(), seed, device)
}

/// Uniform values in `[low, high)` on `device`.
pub fn uniform(device: &Device, shape: &[usize], low: f32, high: f32, seed: u64) -> Tensor {
    Tensor::rand_uniform(shape.to_vec(), low..high, seed, device)
}

/// Normal values pushed at least 0.1 away from zero, so a ±eps step never crosses the
/// kink of ReLU.
pub fn away_from_zero(device: &Device, shape: &[usize], seed: u64) -> Tensor {
    let values = randn(device, shape, seed).to_vec().unwrap();
    let moved = values.into_iter().map(|v| v + 0.1 * v.signum()).collect();
    Tensor::from_vec(shape.to_vec(), moved, device)
}

/// A shuffled arithmetic sequence with steps of 0.1: all values distinct by far more
/// than the finite-difference step, so max-pool and max never change their winner.
pub fn distinct(device: &Device, shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let mut values: Vec<f32> = (0..n).map(|i| (i as f32 - n as f32 / 2.0) * 0.1).collect();
    Rng::new(seed).shuffle(&mut values);
    Tensor::from_vec(shape.to_vec(), values, device)
}

/// Most elements checked per input (a fixed random sample beyond that).
const MAX_CHECKED: usize = 250;
/// Central-difference step. Inputs are O(1), so the truncation error O(eps²) is ~1e-4.
const EPS: f64 = 1e-2;

/// Checks the tape's gradients of `f` at `inputs` against central differences.
///
/// The scalar is `Σ wᵢ·f(x)ᵢ` with fixed random weights `w`. Numeric derivatives sum
/// the outputs on the host in f64, so only f32 rounding inside the op itself remains:
/// about 1e-6 relative per output, divided by the 2·eps step, ≈1e-4 of the output's
/// magnitude. Tolerance: `|analytic − numeric| ≤ 2e-3 + 1e-2·|numeric|`, which a wrong
/// rule (a missing term, a transposed index, a wrong scale) exceeds by orders of
/// magnitude.
pub fn check_gradients(name: &str, inputs: impl Into<Vec<Tensor>>, f: impl Fn(&[Tensor]) -> Tensor) {
    let leaves: Vec<Tensor> = inputs
        .into()
        .iter()
        .map(|t| if t.dtype() == DType::F32 { t.with_requires_grad() } else { t.clone() })
        .collect();
    let out = f(&leaves);
    let weights = randn(out.device(), out.dims(), 99);
    let grads = out.mul(&weights).sum().backward();
    let w_host: Vec<f64> = weights.to_vec().unwrap().into_iter().map(f64::from).collect();
    let objective = |xs: &[Tensor]| -> f64 {
        let y = no_grad(|| f(xs)).to_vec().unwrap();
        y.iter().zip(&w_host).map(|(y, w)| f64::from(*y) * w).sum()
    };

    for (i, leaf) in leaves.iter().enumerate() {
        if leaf.dtype() != DType::F32 {
            continue;
        }
        let analytic =
            grads.get(leaf).unwrap_or_else(|| panic!("{name}: no gradient for input {i}")).to_vec().unwrap();
        assert_eq!(analytic.len(), leaf.numel(), "{name}: gradient {i} has the wrong size");
        let base = leaf.to_vec().unwrap();
        let mut positions: Vec<usize> = (0..base.len()).collect();
        Rng::new(5).shuffle(&mut positions);
        positions.truncate(MAX_CHECKED);
        for &j in &positions {
            let at = |delta: f64| {
                let mut moved = base.clone();
                moved[j] = (f64::from(moved[j]) + delta) as f32;
                let mut xs = leaves.clone();
                xs[i] = Tensor::from_vec(leaf.shape().clone(), moved, leaf.device());
                objective(&xs)
            };
            let numeric = (at(EPS) - at(-EPS)) / (2.0 * EPS);
            let a = f64::from(analytic[j]);
            assert!(
                (a - numeric).abs() <= 2e-3 + 1e-2 * numeric.abs(),
                "{name}: input {i}, element {j}: analytic {a} vs numeric {numeric}"
            );
        }
    }
}

/// Asserts two slices agree elementwise within `tol`.
pub fn assert_close(name: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{name}: length {} vs {}", got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol, "{name}: element {i}: got {g}, want {w}");
    }
}

/// `n` 8×8 one-channel images on `device` whose class (0–3) is the quadrant holding a
/// bright square, and their labels.
pub fn quadrant_images(device: &Device, n: usize) -> (Tensor, Tensor) {
    let mut pixels = vec![0.0f32; n * 64];
    let labels: Vec<i32> = (0..n as i32).map(|i| i % 4).collect();
    for (i, &class) in labels.iter().enumerate() {
        let (row, col) = (4 * (class as usize / 2), 4 * (class as usize % 2));
        for r in row..row + 3 {
            for c in col..col + 3 {
                pixels[i * 64 + r * 8 + c] = 1.0 + 0.1 * (i % 3) as f32;
            }
        }
    }
    (Tensor::from_vec([n, 1, 8, 8], pixels, device), Tensor::from_i32([n], labels, device))
}
