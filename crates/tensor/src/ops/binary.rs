//! Elementwise arithmetic of two tensors with NumPy/PyTorch broadcasting (trailing
//! dimensions aligned; a bias `[C]` adds to `[N, C]`, a bias `[C, 1, 1]` to
//! `[N, C, H, W]`), and gradients summed back to each input's shape.

use super::{expect_f32, expect_same_device};
use crate::autograd::BackwardRule;
use crate::{BinaryOp, Tensor};

struct BinaryBackward(BinaryOp);

impl BackwardRule for BinaryBackward {
    fn backward(&self, inputs: &[Tensor], output: &Tensor, grad: Tensor) -> Vec<Option<Tensor>> {
        let grad = &grad;
        let (a, b) = (&inputs[0], &inputs[1]);
        let (ga, gb) = match self.0 {
            BinaryOp::Add => (grad.clone(), grad.clone()),
            BinaryOp::Sub => (grad.clone(), grad.neg()),
            BinaryOp::Mul => (grad * b, grad * a),
            BinaryOp::Div => (grad / b, (grad * output / b).neg()),
        };
        vec![a.requires_grad().then(|| ga.sum_to(a.shape())), b.requires_grad().then(|| gb.sum_to(b.shape()))]
    }
}

impl Tensor {
    /// `self op other`, broadcasting both to a common shape.
    pub fn binary(&self, op: BinaryOp, other: &Tensor) -> Tensor {
        let name = format!("{op:?}").to_lowercase();
        expect_f32(&name, self);
        expect_f32(&name, other);
        expect_same_device(&name, self, other);
        let out_shape = self.shape().broadcast(other.shape()).unwrap_or_else(|| {
            panic!("{name}: shapes {} and {} do not broadcast", self.shape(), other.shape())
        });
        let storage = self.device().backend().binary(
            op,
            self.storage(),
            self.shape(),
            other.storage(),
            other.shape(),
            &out_shape,
        );
        Tensor::from_op(storage, out_shape, &[self, other], BinaryBackward(op))
    }

    /// `self + other` (broadcasting).
    pub fn add(&self, other: &Tensor) -> Tensor {
        self.binary(BinaryOp::Add, other)
    }

    /// `self - other` (broadcasting).
    pub fn sub(&self, other: &Tensor) -> Tensor {
        self.binary(BinaryOp::Sub, other)
    }

    /// `self * other` elementwise (broadcasting).
    pub fn mul(&self, other: &Tensor) -> Tensor {
        self.binary(BinaryOp::Mul, other)
    }

    /// `self / other` elementwise (broadcasting).
    pub fn div(&self, other: &Tensor) -> Tensor {
        self.binary(BinaryOp::Div, other)
    }
}
