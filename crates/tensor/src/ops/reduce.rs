//! Reductions: sum and mean (all elements, or along an axis with `keepdim`), max along
//! an axis (gradient to the argmax), and argmax.

use super::expect_f32;
use crate::autograd::BackwardRule;
use crate::{StorageRef, Tensor};

struct SumAxisBackward {
    axis: usize,
}

impl BackwardRule for SumAxisBackward {
    fn backward(&self, inputs: &[Tensor], _output: &Tensor, grad: Tensor) -> Vec<Option<Tensor>> {
        let grad = &grad;
        let x = &inputs[0];
        let kept = grad.reshape(x.shape().reduced(self.axis, true));
        vec![Some(kept.broadcast_to(x.shape().clone()))]
    }
}

struct MaxAxisBackward {
    axis: usize,
    argmax: StorageRef,
}

impl BackwardRule for MaxAxisBackward {
    fn backward(&self, inputs: &[Tensor], _output: &Tensor, grad: Tensor) -> Vec<Option<Tensor>> {
        let grad = &grad;
        let x = &inputs[0];
        let split = x.shape().split_at_axis(self.axis);
        let storage = x.device().backend().max_axis_backward(grad.storage(), &self.argmax, split);
        vec![Some(Tensor::from_storage(storage, x.shape().clone(), x.device()))]
    }
}

impl Tensor {
    /// Sum along `axis`; `keepdim` keeps that axis with length 1.
    pub fn sum_axis(&self, axis: usize, keepdim: bool) -> Tensor {
        expect_f32("sum_axis", self);
        let split = self.shape().split_at_axis(axis);
        let storage = self.device().backend().sum_axis(self.storage(), split);
        Tensor::from_op(storage, self.shape().reduced(axis, keepdim), &[self], SumAxisBackward { axis })
    }

    /// Sum of all elements, as a scalar (shape `[]`).
    pub fn sum(&self) -> Tensor {
        self.reshape([self.numel()]).sum_axis(0, false)
    }

    /// Mean along `axis`.
    pub fn mean_axis(&self, axis: usize, keepdim: bool) -> Tensor {
        let len = self.shape().dim(axis);
        self.sum_axis(axis, keepdim).mul_scalar(1.0 / len as f32)
    }

    /// Mean of all elements, as a scalar.
    pub fn mean(&self) -> Tensor {
        self.sum().mul_scalar(1.0 / self.numel() as f32)
    }

    /// Maximum along `axis` (the gradient goes to the first maximal element).
    pub fn max_axis(&self, axis: usize, keepdim: bool) -> Tensor {
        expect_f32("max_axis", self);
        let split = self.shape().split_at_axis(axis);
        let (values, argmax) = self.device().backend().max_axis(self.storage(), split);
        let shape = self.shape().reduced(axis, keepdim);
        Tensor::from_op(values, shape, &[self], MaxAxisBackward { axis, argmax })
    }

    /// Position of the maximum along `axis`, as an i32 tensor without that axis
    /// (e.g. predicted classes from logits `[N, classes]` with `argmax(1)`).
    pub fn argmax(&self, axis: usize) -> Tensor {
        expect_f32("argmax", self);
        let split = self.shape().split_at_axis(axis);
        let (_, argmax) = self.device().backend().max_axis(self.storage(), split);
        Tensor::from_storage(argmax, self.shape().reduced(axis, false), self.device())
    }
}
