//! End to end: models written with raw tensors, the tape and a manual SGD update learn.

mod common;

use common::*;
use kiln::prelude::*;
use kiln::tensor::Rng;

/// Two concentric rings: class 0 inside radius 1, class 1 between radius 1.5 and 2.5.
fn rings(device: &Device, n: usize, seed: u64) -> (Tensor, Tensor) {
    let mut rng = Rng::new(seed);
    let mut points = Vec::with_capacity(2 * n);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let class = (i % 2) as i32;
        let radius = if class == 0 { rng.next_f32() } else { 1.5 + rng.next_f32() };
        let angle = rng.next_f32() * std::f32::consts::TAU;
        points.extend([radius * angle.cos(), radius * angle.sin()]);
        labels.push(class);
    }
    (Tensor::from_vec([n, 2], points, device), Tensor::from_i32([n], labels, device))
}

/// `p − lr·grad` as a fresh parameter.
fn sgd_step(param: &Tensor, grads: &Gradients, lr: f32) -> Tensor {
    let grad = grads.get(param).expect("every parameter gets a gradient");
    no_grad(|| param.sub(&(grad * lr))).with_requires_grad()
}

fn accuracy(logits: &Tensor, labels: &Tensor) -> f32 {
    let predicted = logits.argmax(1).to_vec_i32().unwrap();
    let truth = labels.to_vec_i32().unwrap();
    predicted.iter().zip(&truth).filter(|(p, t)| p == t).count() as f32 / truth.len() as f32
}

#[test]
fn mlp_learns_concentric_rings() {
    let device = &Device::cpu();
    let (x, y) = rings(device, 400, 1);
    let (x_test, y_test) = rings(device, 400, 2);
    let mut w1 = Tensor::normal([32, 2], Normal { mean: 0.0, std: 0.7 }, 3, device).with_requires_grad();
    let mut b1 = Tensor::zeros([32], device).with_requires_grad();
    let mut w2 = Tensor::normal([2, 32], Normal { mean: 0.0, std: 0.25 }, 4, device).with_requires_grad();
    let mut b2 = Tensor::zeros([2], device).with_requires_grad();
    let forward = |x: &Tensor, w1: &Tensor, b1: &Tensor, w2: &Tensor, b2: &Tensor| {
        x.matmul_with(w1, false, true).add(b1).relu().matmul_with(w2, false, true).add(b2)
    };
    for _ in 0..600 {
        let loss = forward(&x, &w1, &b1, &w2, &b2).cross_entropy(&y);
        let grads = loss.backward();
        (w1, b1, w2, b2) = (
            sgd_step(&w1, &grads, 0.2),
            sgd_step(&b1, &grads, 0.2),
            sgd_step(&w2, &grads, 0.2),
            sgd_step(&b2, &grads, 0.2),
        );
    }
    let test_accuracy = accuracy(&no_grad(|| forward(&x_test, &w1, &b1, &w2, &b2)), &y_test);
    assert!(test_accuracy > 0.95, "test accuracy {test_accuracy}");
}

#[test]
fn tiny_cnn_drives_its_loss_down_fivefold() {
    let device = &Device::cpu();
    let images = randn(device, &[8, 1, 12, 12], 5);
    let labels = Tensor::from_i32([8], vec![0, 1, 2, 3, 3, 2, 1, 0], device);
    let mut kernel =
        Tensor::normal([4, 1, 3, 3], Normal { mean: 0.0, std: 0.4 }, 6, device).with_requires_grad();
    let mut bias = Tensor::zeros([4], device).with_requires_grad();
    let mut dense = Tensor::normal([4, 144], Normal { mean: 0.0, std: 0.1 }, 7, device).with_requires_grad();
    let loss_of = |kernel: &Tensor, bias: &Tensor, dense: &Tensor| {
        let h = images.conv2d(kernel, Some(bias), 1, 1).relu().max_pool2d(2, 2, 0).flatten(1);
        h.matmul_with(dense, false, true).cross_entropy(&labels)
    };
    let first = loss_of(&kernel, &bias, &dense).item().unwrap();
    for _ in 0..150 {
        let grads = loss_of(&kernel, &bias, &dense).backward();
        (kernel, bias, dense) =
            (sgd_step(&kernel, &grads, 0.1), sgd_step(&bias, &grads, 0.1), sgd_step(&dense, &grads, 0.1));
    }
    let last = loss_of(&kernel, &bias, &dense).item().unwrap();
    assert!(last * 5.0 < first, "loss went from {first} to {last}");
}
