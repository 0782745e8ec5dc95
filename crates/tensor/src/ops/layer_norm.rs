//! Layer normalization as one op: each row of the trailing `normalized_shape`
//! normalized by its own mean and variance, then scaled by `weight` and shifted by
//! `bias` elementwise, in one kernel forward and one backward (PyTorch's
//! `F.layer_norm`), instead of a normalization followed by two broadcast ops.

use super::{expect_f32, expect_same_device};
use crate::autograd::BackwardRule;
use crate::backend::RowAffine;
use crate::{AxisSplit, StorageRef, Tensor};

struct LayerNormBackward {
    split: AxisSplit,
    /// Each row's mean, then each row's `1/√(var + eps)`.
    stats: StorageRef,
    has_weight: bool,
    has_bias: bool,
}

impl BackwardRule for LayerNormBackward {
    fn backward(&self, inputs: &[Tensor], _output: &Tensor, grad: Tensor) -> Vec<Option<Tensor>> {
        let x = &inputs[0];
        let weight = self.has_weight.then(|| &inputs[1]);
        let (dx, dweight, dbias) = x.device().backend().row_norm_backward(
            x.storage(),
            grad.storage(),
            weight.map(Tensor::storage),
            &self.stats,
            self.split,
        );
        let device = x.device();
        let features_shape = |t: &Tensor| t.shape().clone();
        let mut grads = vec![x.requires_grad().then(|| Tensor::from_storage(dx, x.shape().clone(), device))];
        if let Some(weight) = weight {
            grads.push(
                weight.requires_grad().then(|| Tensor::from_storage(dweight, features_shape(weight), device)),
            );
        }
        if self.has_bias {
            let bias = inputs.last().expect("the bias is the last input");
            grads.push(
                bias.requires_grad().then(|| Tensor::from_storage(dbias, features_shape(bias), device)),
            );
        }
        grads
    }
}

impl Tensor {
    /// Layer normalization over the trailing dimensions `normalized_shape` (PyTorch's
    /// `F.layer_norm`): each example's `normalized_shape` values normalized to zero
    /// mean and unit (population) variance, then `·weight + bias` elementwise (each of
    /// shape `normalized_shape`, both optional), in one kernel.
    ///
    /// ```
    /// use kiln_cpu::CpuDevice;
    /// use kiln_tensor::{Device, Tensor};
    /// let device = Device::cpu();
    /// let x = Tensor::from_vec([2, 2], vec![1.0, 3.0, 10.0, 14.0], &device);
    /// let bias = Tensor::from_vec([2], vec![0.5, 0.5], &device);
    /// let y = x.layer_norm(&[2], None, Some(&bias), 0.0);
    /// assert_eq!(y.to_vec().unwrap(), vec![-0.5, 1.5, -0.5, 1.5]);
    /// ```
    pub fn layer_norm(
        &self,
        normalized_shape: &[usize],
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f32,
    ) -> Tensor {
        expect_f32("layer_norm", self);
        let rank = self.shape().rank();
        assert!(
            !normalized_shape.is_empty()
                && rank >= normalized_shape.len()
                && self.dims()[rank - normalized_shape.len()..] == *normalized_shape,
            "layer_norm: input shape {} does not end in the normalized shape {normalized_shape:?}",
            self.shape()
        );
        assert!(eps >= 0.0, "layer_norm: eps must not be negative, got {eps}");
        for (what, t) in [("weight", weight), ("bias", bias)] {
            if let Some(t) = t {
                expect_f32("layer_norm", t);
                expect_same_device("layer_norm", self, t);
                assert!(
                    t.dims() == normalized_shape,
                    "layer_norm: {what} must have the normalized shape {normalized_shape:?}, got shape {}",
                    t.shape()
                );
            }
        }
        let features: usize = normalized_shape.iter().product();
        let split = AxisSplit { outer: self.numel() / features.max(1), len: features, inner: 1 };
        let affine = RowAffine { weight: weight.map(Tensor::storage), bias: bias.map(Tensor::storage) };
        let (output, stats) = self.device().backend().row_norm(self.storage(), affine, split, eps);
        let mut inputs = vec![self];
        inputs.extend(weight);
        inputs.extend(bias);
        let rule = LayerNormBackward { split, stats, has_weight: weight.is_some(), has_bias: bias.is_some() };
        Tensor::from_op(output, self.shape().clone(), &inputs, rule)
    }
}
