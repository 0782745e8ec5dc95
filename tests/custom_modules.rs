//! Models whose forward is a graph of the user's own: a residual block and a
//! pre-norm transformer block written as `Module`s outside Kiln, trained on every
//! device. Their parameters and buffers are named by the user's fields, as PyTorch's
//! are, so checkpoints round-trip.

#[macro_use]
mod common;

use kiln::nn::{
    Adam, AdaptiveAvgPool2d, BatchNorm, BatchNorm2d, Conv2d, Dense, Flatten, GELU, Initializer, LayerNorm,
    Mode, Module, MultiheadAttention, Optimizer, Result, Sequential, SummaryStyle, checkpoint,
};
use kiln::prelude::*;

/// ResNet's basic block: `relu(x + bn2(conv2(relu(bn1(conv1(x))))))`.
struct ResidualBlock {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
}

impl ResidualBlock {
    fn new(init: &mut Initializer, channels: usize) -> Self {
        let device = init.device().clone();
        ResidualBlock {
            conv1: Conv2d::new(init, channels, channels, 3).with_padding(1),
            bn1: BatchNorm2d::new(&device, channels),
            conv2: Conv2d::new(init, channels, channels, 3).with_padding(1),
            bn2: BatchNorm2d::new(&device, channels),
        }
    }
}

impl Module for ResidualBlock {
    fn forward(&self, x: &Tensor, mode: Mode) -> Tensor {
        let inner = self.bn1.forward(&self.conv1.forward(x, mode), mode).relu();
        let inner = self.bn2.forward(&self.conv2.forward(&inner, mode), mode);
        x.add(&inner).relu()
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape> {
        Ok(input.clone())
    }

    fn summary_style(&self) -> SummaryStyle {
        SummaryStyle::Row("residual block".into())
    }

    // Listing the children is all it takes: the default visitors name their
    // parameters and buffers `conv1.weight`, `bn1.running_mean`, … from these names.
    fn children(&self) -> Vec<(&str, &dyn Module)> {
        vec![("conv1", &self.conv1), ("bn1", &self.bn1), ("conv2", &self.conv2), ("bn2", &self.bn2)]
    }

    fn children_mut(&mut self) -> Vec<(&str, &mut dyn Module)> {
        vec![
            ("conv1", &mut self.conv1),
            ("bn1", &mut self.bn1),
            ("conv2", &mut self.conv2),
            ("bn2", &mut self.bn2),
        ]
    }
}

/// A pre-norm transformer encoder block: `x + attn(ln1(x))`, then `+ mlp(ln2(·))`.
struct EncoderBlock {
    ln1: LayerNorm,
    attention: MultiheadAttention,
    ln2: LayerNorm,
    mlp: Sequential,
}

impl EncoderBlock {
    fn new(init: &mut Initializer, dim: usize, heads: usize) -> Self {
        let device = init.device().clone();
        EncoderBlock {
            ln1: LayerNorm::new(&device, &[dim]),
            attention: MultiheadAttention::new(init, dim, heads).batch_first(),
            ln2: LayerNorm::new(&device, &[dim]),
            mlp: Sequential::new()
                .push(Dense::new(init, dim, 2 * dim))
                .push(GELU::default())
                .push(Dense::new(init, 2 * dim, dim)),
        }
    }
}

impl Module for EncoderBlock {
    fn forward(&self, x: &Tensor, mode: Mode) -> Tensor {
        let x = x.add(&self.attention.forward(&self.ln1.forward(x, mode), mode));
        x.add(&self.mlp.forward(&self.ln2.forward(&x, mode), mode))
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape> {
        Ok(input.clone())
    }

    fn summary_style(&self) -> SummaryStyle {
        SummaryStyle::Row("encoder block".into())
    }

    fn children(&self) -> Vec<(&str, &dyn Module)> {
        vec![("ln1", &self.ln1), ("attention", &self.attention), ("ln2", &self.ln2), ("mlp", &self.mlp)]
    }

    fn children_mut(&mut self) -> Vec<(&str, &mut dyn Module)> {
        vec![
            ("ln1", &mut self.ln1),
            ("attention", &mut self.attention),
            ("ln2", &mut self.ln2),
            ("mlp", &mut self.mlp),
        ]
    }
}

/// Training loss after `steps` Adam steps on `x`, `y`, and the loss before them.
fn train(
    model: &dyn Module,
    x: &Tensor,
    y: &Tensor,
    steps: usize,
    loss: impl Fn(&Tensor, &Tensor) -> Tensor,
) -> (f32, f32) {
    let mut adam = Adam::new(0.01);
    let before = loss(&no_grad(|| model.forward(x, Mode::Eval)), y).item().unwrap();
    for step in 0..steps {
        let grads = loss(&model.forward(x, Mode::train(step as u64)), y).backward();
        adam.step(model, &grads);
    }
    (before, loss(&no_grad(|| model.forward(x, Mode::train(0))), y).item().unwrap())
}

test_on_every_device! {
    fn a_users_residual_network_learns_and_checkpoints_its_statistics(device: &Device) {
        let mut init = Initializer::new(device, 7);
        let model = Sequential::new()
            .push(Conv2d::new(&mut init, 1, 4, 3).with_padding(1))
            .push(ResidualBlock::new(&mut init, 4))
            .push(AdaptiveAvgPool2d::new(2))
            .push(Flatten)
            .push(Dense::new(&mut init, 16, 4));
        let names: Vec<String> = model.named_buffers().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names[..3], ["1.bn1.running_mean", "1.bn1.running_var", "1.bn1.num_batches_tracked"]);
        assert!(model.named_parameters().iter().any(|(n, _)| n == "1.conv2.weight"));
        let (x, y) = common::quadrant_images(device, 32);
        let (before, after) = train(&model, &x, &y, 40, |logits, y| logits.cross_entropy(y));
        assert!(after < 0.3 * before, "loss {before} -> {after}");

        let path = tempfile::Builder::new().prefix("kiln-residual-").tempdir().unwrap();
        let file = path.path().join("residual.safetensors");
        checkpoint::save(&file, &model, None, &Default::default()).unwrap();
        let mut copy = Sequential::new()
            .push(Conv2d::new(&mut init, 1, 4, 3).with_padding(1))
            .push(ResidualBlock::new(&mut init, 4))
            .push(AdaptiveAvgPool2d::new(2))
            .push(Flatten)
            .push(Dense::new(&mut init, 16, 4));
        checkpoint::load(&file, &mut copy, None).unwrap();
        let (a, b) = (model.forward(&x, Mode::Eval).to_vec().unwrap(), copy.forward(&x, Mode::Eval).to_vec().unwrap());
        assert_eq!(a, b, "the loaded copy evaluates alike, running statistics included");
    }

    fn a_users_transformer_block_learns_a_sequence_task(device: &Device) {
        // Each of 6 tokens is a one-hot 8-vector; the target of a position is the
        // sequence's first token: attention must carry it along.
        let (n, tokens, dim) = (16, 6, 8);
        let ids: Vec<usize> = (0..n * tokens).map(|i| (i * 5 + i / tokens) % dim).collect();
        let mut values = vec![0.0f32; n * tokens * dim];
        ids.iter().enumerate().for_each(|(i, &id)| values[i * dim + id] = 1.0);
        let x = Tensor::from_vec([n, tokens, dim], values, device);
        let first: Vec<i32> = (0..n * tokens).map(|i| ids[(i / tokens) * tokens] as i32).collect();
        let y = Tensor::from_i32([n * tokens], first, device);
        let mut init = Initializer::new(device, 3);
        let model = Sequential::new().push(EncoderBlock::new(&mut init, dim, 2)).push(Dense::new(&mut init, dim, dim));
        assert!(model.named_parameters().iter().any(|(n, _)| n == "0.attention.in_proj_weight"));
        let (before, after) = train(&model, &x, &y, 60, |logits, y| logits.reshape([n * tokens, dim]).cross_entropy(y));
        assert!(after < 0.5 * before, "loss {before} -> {after}");
    }
}

/// A layer that leaves its summary to the default.
struct Twice;

impl Module for Twice {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Tensor {
        x.add(x)
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape> {
        Ok(input.clone())
    }
}

#[test]
fn a_module_without_a_summary_style_is_named_by_its_type() {
    let summary = Sequential::new().push(Twice).summary(&Shape::from([3])).unwrap().to_string();
    assert!(summary.contains("Twice"), "{summary}");
}
