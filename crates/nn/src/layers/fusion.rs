//! Fused forms of a layer and the ReLU (and dropout) after it, which [`Sequential`]
//! runs as one op where it can: the ReLU, and the dropout mask, applied in the layer's
//! own store, one pass over memory; and a convolution with the batch norm after it
//! folded in, in evaluation. Only Kiln's layers that have such a form implement
//! [`ReluFusion`]; `Sequential` recognizes them, `ReLU` and `Dropout` by their types, so
//! the `Module` trait, and every layer a user writes, knows nothing of fusion.
//!
//! [`Sequential`]: crate::Sequential

use std::any::Any;

use kiln_tensor::{Shape, Tensor};

use crate::{BatchNorm, Conv2d, Dense, Dropout, Mode, Module, ReLU};

/// A layer that can run with the ReLU after it as one op.
pub(crate) trait ReluFusion {
    /// The layer followed by ReLU, or `None` when this instance has no fused form.
    fn forward_relu(&self, x: &Tensor) -> Option<Tensor>;

    /// The layer followed by ReLU and `dropout` (in `dropout_mode`), or `None` when
    /// there is no such form or the dropout is inactive (evaluation).
    fn forward_relu_dropout(&self, _x: &Tensor, _dropout: &Dropout, _dropout_mode: Mode) -> Option<Tensor> {
        None
    }
}

/// `layer` as a layer with fused forms, if it is one.
pub(crate) fn relu_fusion(layer: &dyn Module) -> Option<&dyn ReluFusion> {
    let layer: &dyn Any = layer;
    match layer.downcast_ref::<Conv2d>() {
        Some(conv) => Some(conv),
        None => layer.downcast_ref::<Dense>().map(|dense| dense as &dyn ReluFusion),
    }
}

/// How a convolution followed by a batch norm ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ThenRelu {
    /// With a ReLU.
    Yes,
    /// Without.
    No,
}

/// `conv`, then `norm`, then ReLU if asked. In evaluation the normalization is a fixed
/// per-channel scale and shift, which [`Conv2d::forward_scaled`] folds into the
/// convolution: one op instead of three passes over the activations. In training the
/// three run as they are (the batch's statistics are not known before the convolution).
pub(crate) fn conv_batch_norm(
    conv: &Conv2d,
    norm: &BatchNorm,
    x: &Tensor,
    mode: Mode,
    relu: ThenRelu,
) -> Tensor {
    // Folded only where the norm takes the convolution's output (a `BatchNorm2d` of its
    // channels); anything else runs unfused, and fails there with the norm's message.
    let out_channels = conv.weight().dims()[0];
    let fits = norm.output_shape(&Shape::from([out_channels, 1, 1])).is_ok();
    if mode == Mode::Eval && fits {
        let (scale, shift) = norm.eval_scale_and_shift();
        return conv.forward_scaled(x, &scale, &shift, relu == ThenRelu::Yes);
    }
    let normalized = norm.forward(&conv.forward(x, mode), mode);
    if relu == ThenRelu::Yes { normalized.relu() } else { normalized }
}

/// `layer` as a [`Conv2d`], if it is one.
pub(crate) fn as_conv(layer: &dyn Module) -> Option<&Conv2d> {
    (layer as &dyn Any).downcast_ref::<Conv2d>()
}

/// `layer` as a [`BatchNorm`], if it is one.
pub(crate) fn as_batch_norm(layer: &dyn Module) -> Option<&BatchNorm> {
    (layer as &dyn Any).downcast_ref::<BatchNorm>()
}

/// Whether `layer` is [`ReLU`].
pub(crate) fn is_relu(layer: &dyn Module) -> bool {
    (layer as &dyn Any).is::<ReLU>()
}

/// `layer` as a [`Dropout`], if it is one.
pub(crate) fn as_dropout(layer: &dyn Module) -> Option<&Dropout> {
    (layer as &dyn Any).downcast_ref::<Dropout>()
}

#[cfg(test)]
mod tests {
    use kiln_cpu::CpuDevice;
    use kiln_tensor::Device;

    use super::*;
    use crate::{Initializer, MaxPool2d, Sigmoid};

    #[test]
    fn sequential_recognizes_the_fusable_layers_relu_and_dropout_by_type() {
        let mut init = Initializer::new(&Device::cpu(), 0);
        let (conv, dense) = (Conv2d::new(&mut init, 1, 2, 3), Dense::new(&mut init, 4, 2));
        assert!(relu_fusion(&conv).is_some() && relu_fusion(&dense).is_some());
        assert!(relu_fusion(&MaxPool2d::new(2, 2)).is_none());
        assert!(is_relu(&ReLU) && !is_relu(&Sigmoid));
        assert!(as_dropout(&Dropout::new(0.5)).is_some() && as_dropout(&ReLU).is_none());
    }

    #[test]
    fn a_fused_dense_and_relu_equal_the_two_ops() {
        let device = Device::cpu();
        let dense = Dense::new(&mut Initializer::new(&device, 1), 4, 3);
        let x = Tensor::randn([2, 4], 2, &device);
        let fused = dense.forward_relu(&x).expect("Dense has a fused form");
        assert_eq!(fused.to_vec().unwrap(), dense.forward(&x, Mode::Eval).relu().to_vec().unwrap());
    }
}
