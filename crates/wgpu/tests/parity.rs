//! Every op, forward and backward, on the wgpu backend against the CPU backend, on
//! random inputs of odd shapes (not multiples of the 64×64 GEMM tile or the 256-wide
//! workgroups): relative error ‖gpu − cpu‖ / ‖cpu‖ under 1e-4.
//!
//! Without an adapter these tests skip with a printed reason, unless they run under CI
//! (`CI` set; CI installs Mesa's software Vulkan) or with `KILN_REQUIRE_GPU` set, which
//! makes a missing adapter a failure.

mod common;

use common::gpu;
use kiln_cpu::CpuDevice;
use kiln_tensor::{AdamStep, DType, Device, SgdStep, Tensor, UnaryOp, no_grad};

fn cpu() -> Device {
    Device::cpu()
}

fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape.to_vec(), seed, &cpu())
}

fn uniform(shape: &[usize], low: f32, high: f32, seed: u64) -> Tensor {
    Tensor::rand_uniform(shape.to_vec(), low..high, seed, &cpu())
}

/// `‖a − b‖ / ‖b‖` (absolute when b is zero).
fn relative_error(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let diff: f64 = a.iter().zip(b).map(|(x, y)| f64::from(x - y).powi(2)).sum::<f64>().sqrt();
    let norm: f64 = b.iter().map(|y| f64::from(*y).powi(2)).sum::<f64>().sqrt();
    if norm == 0.0 { diff } else { diff / norm }
}

fn assert_close(name: &str, gpu: &Tensor, cpu: &Tensor, tolerance: f64) {
    assert_eq!(gpu.dims(), cpu.dims(), "{name}: shapes differ");
    let error = relative_error(&gpu.to_vec().unwrap(), &cpu.to_vec().unwrap());
    assert!(error < tolerance, "{name}: relative error {error:e} ≥ {tolerance:e}");
}

/// Runs `f` on the CPU inputs and on copies on the GPU; compares the outputs and the
/// gradients of every f32 input under a random weighting of the output.
fn parity_with(
    name: &str,
    gpu: &Device,
    inputs: Vec<Tensor>,
    tolerance: f64,
    f: impl Fn(&[Tensor]) -> Tensor,
) {
    let leaves = |device: &Device| -> Vec<Tensor> {
        inputs
            .iter()
            .map(|t| {
                let moved = t.to_device(device).unwrap();
                if t.dtype() == DType::F32 { moved.with_requires_grad() } else { moved }
            })
            .collect()
    };
    let (cpu_in, gpu_in) = (leaves(&cpu()), leaves(gpu));
    let (cpu_out, gpu_out) = (f(&cpu_in), f(&gpu_in));
    assert_close(&format!("{name} forward"), &gpu_out, &cpu_out, tolerance);
    let weights = randn(cpu_out.dims(), 77);
    let cpu_grads = cpu_out.mul(&weights).sum().backward();
    let gpu_grads = gpu_out.mul(&weights.to_device(gpu).unwrap()).sum().backward();
    for (i, (c, g)) in cpu_in.iter().zip(&gpu_in).enumerate() {
        if c.dtype() == DType::F32 {
            let (cg, gg) = (cpu_grads.get(c).unwrap(), gpu_grads.get(g).unwrap());
            assert_close(&format!("{name} gradient of input {i}"), gg, cg, tolerance);
        }
    }
}

fn parity(name: &str, gpu: &Device, inputs: Vec<Tensor>, f: impl Fn(&[Tensor]) -> Tensor) {
    parity_with(name, gpu, inputs, 1e-4, f);
}

#[test]
fn matmul_with_every_transpose_on_odd_shapes() {
    let Some(gpu) = gpu() else { return };
    let (m, k, n) = (67, 45, 131);
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let a = randn(&if ta { [k, m] } else { [m, k] }, 1);
        let b = randn(&if tb { [n, k] } else { [k, n] }, 2);
        parity(&format!("matmul {ta} {tb}"), &gpu, vec![a, b], |x| x[0].matmul_with(&x[1], ta, tb));
    }
    parity("matmul 1x1", &gpu, vec![randn(&[1, 1], 3), randn(&[1, 1], 4)], |x| x[0].matmul(&x[1]));
    // Few rows take the narrow (16-row tile) kernel.
    parity("matmul narrow", &gpu, vec![randn(&[7, 45], 3), randn(&[131, 45], 4)], |x| {
        x[0].matmul_with(&x[1], false, true)
    });
}

#[test]
fn broadcasting_arithmetic() {
    let Some(gpu) = gpu() else { return };
    let cases: [(&[usize], &[usize]); 5] =
        [(&[3, 5], &[5]), (&[3, 5, 7, 9], &[5, 1, 1]), (&[4, 1], &[1, 5]), (&[3, 5], &[]), (&[517], &[517])];
    for (sa, sb) in cases {
        let (a, b) = (randn(sa, 5), uniform(sb, 0.5, 2.0, 6));
        parity("add", &gpu, vec![a.clone(), b.clone()], |x| x[0].add(&x[1]));
        parity("sub", &gpu, vec![a.clone(), b.clone()], |x| x[0].sub(&x[1]));
        parity("mul", &gpu, vec![a.clone(), b.clone()], |x| x[0].mul(&x[1]));
        parity("div", &gpu, vec![a.clone(), b.clone()], |x| x[0].div(&x[1]));
    }
    parity("broadcast_to", &gpu, vec![randn(&[5, 1], 7)], |x| x[0].broadcast_to([3, 5, 7]));
    parity("reshape", &gpu, vec![randn(&[3, 5, 7], 8)], |x| x[0].reshape([7, 15]).flatten(0));
}

/// Every unary op of the table, forward and derivative, on the GPU against the CPU:
/// each formula is written once in Rust and once in WGSL (`unary_ops.rs`), so this is
/// the test that fails when the two disagree. It walks `UnaryOp::examples()`, so a new
/// op is tested by being added to the table.
#[test]
fn unary_functions() {
    let Some(gpu) = gpu() else { return };
    let shape = [3, 5, 7, 11];
    for (op, domain) in UnaryOp::examples() {
        let mut values = randn(&shape, 9).mul_scalar(2.0).to_vec().unwrap();
        domain.place(&mut values, 0.1);
        let input = Tensor::from_vec(shape.to_vec(), values, &cpu());
        parity(&format!("{op:?}"), &gpu, vec![input], move |x| x[0].unary(op));
    }
}

/// Batched products (one GEMM pass per product at its offsets) against the CPU, with
/// broadcast batches, both transposes and a product split along K by the tuner's
/// default tiles for tall operands.
#[test]
fn batched_matmul() {
    let Some(gpu) = gpu() else { return };
    parity(
        "[3, 2, 17, 9] · [3, 2, 9, 13]",
        &gpu,
        vec![randn(&[3, 2, 17, 9], 60), randn(&[3, 2, 9, 13], 61)],
        |x| x[0].matmul(&x[1]),
    );
    parity("[4, 7, 5] · [6, 5]ᵀ", &gpu, vec![randn(&[4, 7, 5], 62), randn(&[6, 5], 63)], |x| {
        x[0].matmul_with(&x[1], false, true)
    });
    parity("[5, 7]ᵀ · [3, 5, 4]", &gpu, vec![randn(&[5, 7], 64), randn(&[3, 5, 4], 65)], |x| {
        x[0].matmul_with(&x[1], true, false)
    });
    parity(
        "[2, 130, 300] · [2, 300, 3]",
        &gpu,
        vec![randn(&[2, 130, 300], 66), randn(&[2, 300, 3], 67)],
        |x| x[0].matmul(&x[1]),
    );
}

#[test]
fn reductions_softmax_and_loss() {
    let Some(gpu) = gpu() else { return };
    let x = randn(&[3, 301, 7], 11);
    parity("sum", &gpu, vec![x.clone()], |x| x[0].sum());
    parity("mean", &gpu, vec![x.clone()], |x| x[0].mean());
    for axis in 0..3 {
        parity("sum_axis", &gpu, vec![x.clone()], |x| x[0].sum_axis(axis, true));
        parity("max_axis", &gpu, vec![x.clone()], |x| x[0].max_axis(axis, false));
        parity("softmax", &gpu, vec![x.clone()], |x| x[0].softmax(axis));
        parity("log_softmax", &gpu, vec![x.clone()], |x| x[0].log_softmax(axis));
        let (c, g) = (x.argmax(axis), x.to_device(&gpu).unwrap().argmax(axis));
        assert_eq!(g.to_vec_i32().unwrap(), c.to_vec_i32().unwrap(), "argmax {axis}");
    }
    let logits = randn(&[37, 10], 12);
    let labels = Tensor::from_i32([37], (0..37).map(|i| i * 7 % 10).collect(), &cpu());
    parity("cross_entropy", &gpu, vec![logits, labels], |x| x[0].cross_entropy(&x[1]));
}

/// Convolution parity for input `[n, c, h, w]`, `o` filters of `k×k`.
fn conv_case(gpu: &Device, input: [usize; 4], o: usize, k: usize, stride: usize, padding: usize) {
    let name = format!("conv {input:?} {o}×{k}×{k}/{stride} pad {padding}");
    let x = randn(&input, 13);
    let w = randn(&[o, input[1], k, k], 14).mul_scalar(0.1);
    let b = randn(&[o], 15);
    parity(&name, gpu, vec![x.clone(), w.clone(), b], |t| t[0].conv2d(&t[1], Some(&t[2]), stride, padding));
    parity(&format!("{name} without bias"), gpu, vec![x.clone(), w.clone()], |t| {
        t[0].conv2d(&t[1], None, stride, padding)
    });
    let b = randn(&[o], 16);
    parity(&format!("{name} fused with ReLU"), gpu, vec![x, w, b], |t| {
        t[0].conv2d_relu(&t[1], Some(&t[2]), stride, padding)
    });
}

#[test]
fn conv2d_alexnet_configurations() {
    let Some(gpu) = gpu() else { return };
    conv_case(&gpu, [2, 1, 67, 67], 7, 11, 4, 0);
    conv_case(&gpu, [2, 9, 7, 7], 13, 5, 1, 2);
    conv_case(&gpu, [3, 5, 5, 5], 11, 3, 1, 1);
    conv_case(&gpu, [2, 3, 9, 6], 4, 3, 2, 1);
}

#[test]
fn max_pool2d_configurations() {
    let Some(gpu) = gpu() else { return };
    let x = randn(&[3, 5, 15, 15], 16);
    parity("max-pool 3/2", &gpu, vec![x.clone()], |x| x[0].max_pool2d(3, 2, 0));
    parity("max-pool 3/2 pad 1", &gpu, vec![randn(&[2, 3, 8, 5], 17)], |x| x[0].max_pool2d(3, 2, 1));
    parity("max-pool 2/2", &gpu, vec![x], |x| x[0].max_pool2d(2, 2, 0));
}

#[test]
fn dropout_masks_are_identical() {
    let Some(gpu) = gpu() else { return };
    let x = randn(&[3, 5, 7, 11], 18);
    let (c, g) = (x.dropout(0.4, 99), x.to_device(&gpu).unwrap().dropout(0.4, 99));
    assert_eq!(g.to_vec().unwrap(), c.to_vec().unwrap(), "the same seed gives the same mask and scale");
    parity("dropout", &gpu, vec![x], |x| x[0].dropout(0.5, 1234));
}

#[test]
fn the_dense_layers_fused_dropout_draws_the_same_mask() {
    let Some(gpu) = gpu() else { return };
    let (x, w, b) = (randn(&[13, 37], 30), randn(&[29, 37], 31), randn(&[29], 32));
    let mask = kiln_tensor::DropoutMask::new(77).starting_at(1000);
    let fused = |t: &[Tensor]| t[0].linear_relu_dropout(&t[1], Some(&t[2]), 0.4, mask);
    let zeros = |t: &Tensor| t.to_vec().unwrap().iter().map(|&v| v == 0.0).collect::<Vec<_>>();
    let on = |device: &Device| [&x, &w, &b].map(|t| t.to_device(device).unwrap());
    let (c, g) = (fused(&on(&cpu())), fused(&on(&gpu)));
    assert_eq!(zeros(&g), zeros(&c), "the same elements are dropped or clipped");
    let unfused = x.linear_relu(&w, Some(&b)).dropout_with(0.4, mask);
    assert_eq!(zeros(&c), zeros(&unfused));
    parity("linear+relu+dropout", &gpu, vec![x, w, b], fused);
}

#[test]
fn creation_readback_and_copies() {
    let Some(gpu) = gpu() else { return };
    assert_eq!(Tensor::full([1001], 2.5, &gpu).to_vec().unwrap(), vec![2.5; 1001]);
    let labels: Vec<i32> = (0..77).map(|i| i * 3 - 50).collect();
    assert_eq!(Tensor::from_i32([77], labels.clone(), &gpu).to_vec_i32().unwrap(), labels);
    let a = randn(&[300], 19).to_device(&gpu).unwrap();
    let b = Tensor::zeros([300], &gpu);
    gpu.backend().copy_into(b.storage(), a.storage());
    assert_eq!(b.to_vec().unwrap(), a.to_vec().unwrap());
    gpu.synchronize().unwrap();
}

/// Three optimizer steps on both backends from the same parameter and gradients.
fn optimizer_parity(name: &str, gpu: &Device, step: impl Fn(&Device, &Tensor, &Tensor, &[Tensor], u64)) {
    let param = randn(&[1000], 20);
    let grads: Vec<Tensor> = (0..3).map(|i| randn(&[1000], 30 + i)).collect();
    let run = |device: &Device| {
        let p = param.to_device(device).unwrap();
        let state: Vec<Tensor> = (0..2).map(|_| Tensor::zeros([1000], device)).collect();
        for (i, g) in grads.iter().enumerate() {
            step(device, &p, &g.to_device(device).unwrap(), &state, i as u64 + 1);
        }
        no_grad(|| p.add_scalar(0.0))
    };
    assert_close(name, &run(gpu), &run(&cpu()), 1e-5);
}

#[test]
fn optimizer_updates() {
    let Some(gpu) = gpu() else { return };
    for (momentum, nesterov) in [(0.0, false), (0.9, false), (0.9, true)] {
        let config = SgdStep { lr: 0.1, momentum, weight_decay: 0.01, nesterov };
        optimizer_parity("sgd", &gpu, |d, p, g, state, _| {
            let v = (momentum > 0.0).then(|| state[0].storage());
            d.backend().sgd_update(p.storage(), g.storage(), v, config)
        });
    }
    for decoupled in [false, true] {
        optimizer_parity("adam", &gpu, |d, p, g, state, step| {
            let config = AdamStep {
                lr: 0.01,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.1,
                decoupled,
                step,
            };
            d.backend().adam_update(p.storage(), g.storage(), state[0].storage(), state[1].storage(), config)
        });
    }
}

/// A whole model's SGD step (`Sgd::step`, which hands the backend all parameters at
/// once and lets wgpu update up to 8 per dispatch): eleven parameters of several sizes,
/// so a full group and a partial one (on adapters with 24 storage bindings per stage),
/// with plain SGD, momentum and Nesterov, three steps each.
#[test]
fn a_whole_model_sgd_step_matches_the_cpu() {
    use kiln_nn::{Dense, Initializer, Mode, Module, Optimizer, ReLU, Sequential, Sgd};
    let Some(gpu) = gpu() else { return };
    for (momentum, nesterov) in [(0.0, false), (0.9, false), (0.9, true)] {
        let run = |device: &Device| {
            let mut init = Initializer::new(device, 3);
            let mut model = Sequential::new().push(Dense::new(&mut init, 13, 7)).push(ReLU);
            for width in [9, 6, 11, 7] {
                let inputs = model.output_shape(&[13].into()).unwrap().dims()[0];
                model = model.push(Dense::new(&mut init, inputs, width)).push(ReLU);
            }
            let model = model.push(Dense::new(&mut init, 7, 3).without_bias());
            assert_eq!(model.named_parameters().len(), 11);
            let mut sgd =
                Sgd::new(0.1).with_momentum(momentum).with_nesterov(nesterov).with_weight_decay(0.01);
            let x = randn(&[5, 13], 40).to_device(device).unwrap();
            let labels = Tensor::from_i32([5], vec![0, 1, 2, 1, 0], device);
            for _ in 0..3 {
                let grads = model.forward(&x, Mode::Eval).cross_entropy(&labels).backward();
                sgd.step(&model, &grads);
            }
            model.named_parameters()
        };
        for ((name, g), (_, c)) in run(&gpu).iter().zip(run(&cpu())) {
            assert_close(&format!("sgd momentum {momentum} nesterov {nesterov}: {name}"), g, &c, 1e-5);
        }
    }
}
