//! Softmax and log-softmax along an axis (numerically stable: the maximum is
//! subtracted first), with their gradients.

use super::expect_f32;
use crate::Tensor;
use crate::autograd::BackwardRule;

struct SoftmaxBackward {
    axis: usize,
    log: bool,
}

impl BackwardRule for SoftmaxBackward {
    fn backward(&self, inputs: &[Tensor], output: &Tensor, grad: Tensor) -> Vec<Option<Tensor>> {
        let grad = &grad;
        let x = &inputs[0];
        let split = x.shape().split_at_axis(self.axis);
        let storage =
            x.device().backend().softmax_backward(output.storage(), grad.storage(), split, self.log);
        vec![Some(Tensor::from_storage(storage, x.shape().clone(), x.device()))]
    }
}

impl Tensor {
    fn softmax_impl(&self, axis: usize, log: bool) -> Tensor {
        expect_f32(if log { "log_softmax" } else { "softmax" }, self);
        let split = self.shape().split_at_axis(axis);
        let storage = self.device().backend().softmax(self.storage(), split, log);
        Tensor::from_op(storage, self.shape().clone(), &[self], SoftmaxBackward { axis, log })
    }

    /// `e^x / Σ e^x` along `axis`.
    pub fn softmax(&self, axis: usize) -> Tensor {
        self.softmax_impl(axis, false)
    }

    /// `x − log Σ e^x` along `axis`.
    pub fn log_softmax(&self, axis: usize) -> Tensor {
        self.softmax_impl(axis, true)
    }
}
