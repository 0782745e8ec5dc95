//! Normalization along one axis to zero mean and unit variance, as one kernel forward
//! and one backward (what layer and group normalization run on), instead of a chain of
//! reductions and elementwise ops.

use super::expect_f32;
use crate::autograd::BackwardRule;
use crate::{AxisSplit, StorageRef, Tensor};

struct NormalizeBackward {
    split: AxisSplit,
    rstd: StorageRef,
}

impl BackwardRule for NormalizeBackward {
    fn backward(&self, inputs: &[Tensor], output: &Tensor, grad: Tensor) -> Vec<Option<Tensor>> {
        let x = &inputs[0];
        let storage = x.device().backend().normalize_axis_backward(
            output.storage(),
            &self.rstd,
            grad.storage(),
            self.split,
        );
        vec![Some(Tensor::from_storage(storage, x.shape().clone(), x.device()))]
    }
}

impl Tensor {
    /// `(x − mean) / √(var + eps)` along `axis` (population variance, as normalization
    /// layers use), in one kernel.
    pub fn normalize_axis(&self, axis: usize, eps: f32) -> Tensor {
        expect_f32("normalize_axis", self);
        assert!(
            axis < self.shape().rank(),
            "normalize_axis: axis {axis} out of range for shape {}",
            self.shape()
        );
        assert!(eps >= 0.0, "normalize_axis: eps must not be negative, got {eps}");
        let split = self.shape().split_at_axis(axis);
        let (storage, rstd) = self.device().backend().normalize_axis(self.storage(), split, eps);
        Tensor::from_op(storage, self.shape().clone(), &[self], NormalizeBackward { split, rstd })
    }
}
