//! Optimizer updates against PyTorch 2.15's `torch.optim` on the same problem: a
//! parameter `p = [1, −2]` with loss `½·Σp²` (so the gradient is `p`), three steps.
//! (SGD's values also check by hand: v = g, p −= 0.1·v gives 0.9, 0.72, 0.486.)

use kiln_cpu::CpuDevice;
use kiln_nn::{Adam, Mode, Module, Optimizer, Result, Sgd, SummaryStyle};
use kiln_tensor::{Device, Shape, Tensor};

/// A module that is just one parameter vector.
struct Param(Tensor);

impl Module for Param {
    fn forward(&self, _x: &Tensor, _mode: Mode) -> Tensor {
        self.0.clone()
    }
    fn output_shape(&self, input: &Shape) -> Result<Shape> {
        Ok(input.clone())
    }
    fn summary_style(&self) -> SummaryStyle {
        SummaryStyle::Row("param".into())
    }
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        f(&format!("{prefix}p"), &self.0);
    }
}

fn three_steps(mut optimizer: impl Optimizer) -> Vec<Vec<f32>> {
    let device = Device::cpu();
    let model = Param(Tensor::from_vec([2], vec![1.0, -2.0], &device).with_requires_grad());
    (0..3)
        .map(|_| {
            let p = model.forward(&model.0, Mode::train(0));
            let grads = p.mul(&p).sum().mul_scalar(0.5).backward();
            optimizer.step(&model, &grads);
            model.0.to_vec().unwrap()
        })
        .collect()
}

fn assert_steps(name: &str, got: Vec<Vec<f32>>, want: [[f32; 2]; 3]) {
    for (step, (g, w)) in got.iter().zip(want).enumerate() {
        for i in 0..2 {
            assert!((g[i] - w[i]).abs() < 2e-6, "{name} step {}: {g:?} vs PyTorch {w:?}", step + 1);
        }
    }
}

#[test]
fn sgd_with_momentum_matches_pytorch() {
    assert_steps(
        "sgd",
        three_steps(Sgd::new(0.1).with_momentum(0.9)),
        [[0.9, -1.8], [0.72, -1.44], [0.486, -0.972]],
    );
}

#[test]
fn sgd_nesterov_with_weight_decay_matches_pytorch() {
    let sgd = Sgd::new(0.1).with_momentum(0.9).with_nesterov(true).with_weight_decay(0.01);
    assert_steps(
        "nesterov",
        three_steps(sgd),
        [[0.8081, -1.6162], [0.571_215_6, -1.142_431_3], [0.321_859_7, -0.643_719_4]],
    );
}

#[test]
fn adam_matches_pytorch() {
    assert_steps(
        "adam",
        three_steps(Adam::new(0.1)),
        [[0.9, -1.9], [0.800_412_2, -1.800_166_5], [0.701_586_3, -1.700_623_4]],
    );
}

#[test]
fn adamw_matches_pytorch() {
    assert_steps(
        "adamw",
        three_steps(Adam::adamw(0.1, 0.1)),
        [[0.89, -1.88], [0.781_571_9, -1.761_408_9], [0.675_101_3, -1.644_368_6]],
    );
}
