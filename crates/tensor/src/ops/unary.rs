//! Recording an elementwise function of one tensor and its gradient on the tape. The
//! functions themselves, and their `Tensor` methods, are defined in `unary_ops.rs`.

use super::expect_f32;
use crate::autograd::BackwardRule;
use crate::{Tensor, UnaryOp};

struct UnaryBackward(UnaryOp);

impl BackwardRule for UnaryBackward {
    fn backward(&self, inputs: &[Tensor], output: &Tensor, grad: Tensor) -> Vec<Option<Tensor>> {
        vec![Some(grad.unary_gradient(self.0, &inputs[0], output))]
    }
}

impl Tensor {
    /// The gradient of `y = op(x)` from this gradient of `y`: `self · op'(x)`, computed
    /// in this gradient's buffer where the backend can and nothing else holds it (the
    /// backward pass then allocates nothing for it).
    pub(crate) fn unary_gradient(self, op: UnaryOp, x: &Tensor, y: &Tensor) -> Tensor {
        let device = x.device().clone();
        let storage =
            device.backend().unary_backward_owned(op, x.storage(), y.storage(), self.into_storage());
        Tensor::from_storage(storage, x.shape().clone(), &device)
    }
}

impl Tensor {
    /// Applies an elementwise function.
    pub fn unary(&self, op: UnaryOp) -> Tensor {
        expect_f32(op.method_name(), self);
        if let UnaryOp::Clamp { min, max } = op {
            assert!(min <= max, "clamp: min {min} is above max {max}");
        }
        let storage = self.device().backend().unary(op, self.storage());
        Tensor::from_op(storage, self.shape().clone(), &[self], UnaryBackward(op))
    }
}
