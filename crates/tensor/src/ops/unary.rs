//! Elementwise functions of one tensor (relu, sigmoid, tanh, exp, log, sqrt, powers,
//! scalar affine maps, clamping) and their gradients.

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
        expect_f32("unary", self);
        let storage = self.device().backend().unary(op, self.storage());
        Tensor::from_op(storage, self.shape().clone(), &[self], UnaryBackward(op))
    }

    /// `max(x, 0)`.
    pub fn relu(&self) -> Tensor {
        self.unary(UnaryOp::Relu)
    }

    /// The logistic function `1 / (1 + e^-x)`.
    pub fn sigmoid(&self) -> Tensor {
        self.unary(UnaryOp::Sigmoid)
    }

    /// Hyperbolic tangent.
    pub fn tanh(&self) -> Tensor {
        self.unary(UnaryOp::Tanh)
    }

    /// `e^x`.
    pub fn exp(&self) -> Tensor {
        self.unary(UnaryOp::Exp)
    }

    /// Natural logarithm.
    pub fn log(&self) -> Tensor {
        self.unary(UnaryOp::Log)
    }

    /// Square root.
    pub fn sqrt(&self) -> Tensor {
        self.unary(UnaryOp::Sqrt)
    }

    /// `x^p` for a scalar exponent.
    pub fn powf(&self, p: f32) -> Tensor {
        self.unary(UnaryOp::Powf(p))
    }

    /// `-x`.
    pub fn neg(&self) -> Tensor {
        self.unary(UnaryOp::Neg)
    }

    /// `x * s`.
    pub fn mul_scalar(&self, s: f32) -> Tensor {
        self.unary(UnaryOp::MulScalar(s))
    }

    /// `x + s`.
    pub fn add_scalar(&self, s: f32) -> Tensor {
        self.unary(UnaryOp::AddScalar(s))
    }

    /// `x` limited to `[min, max]`; the gradient is zero where `x` lies outside.
    pub fn clamp(&self, min: f32, max: f32) -> Tensor {
        assert!(min <= max, "clamp: min {min} is above max {max}");
        self.unary(UnaryOp::Clamp { min, max })
    }
}
