//! Elementwise ops of two tensors with NumPy/PyTorch broadcasting (trailing dimensions
//! aligned; a bias `[C]` adds to `[N, C]`, a bias `[C, 1, 1]` to `[N, C, H, W]`):
//! arithmetic, `maximum`/`minimum`, comparisons (0/1 masks, not differentiated),
//! `where_mask` and `masked_fill`; gradients summed back to each input's shape.

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
            // The gradient goes to `a` where it won (ties included), else to `b`.
            BinaryOp::Maximum | BinaryOp::Minimum => {
                let a_won = if self.0 == BinaryOp::Maximum { a.ge(b) } else { b.ge(a) };
                (grad.keep_where(&a_won), grad.keep_where(&a_won.mask_complement()))
            }
            // The mask is not differentiated.
            BinaryOp::KeepWhere => {
                return vec![a.requires_grad().then(|| grad.keep_where(b).sum_to(a.shape())), None];
            }
            BinaryOp::Greater | BinaryOp::GreaterEqual | BinaryOp::Equal => return vec![None, None],
            // Both inputs get the gradient where the output is positive.
            BinaryOp::AddRelu => {
                let passed = grad.keep_where(output);
                (passed.clone(), passed)
            }
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

    /// `relu(self + other)` (broadcasting) as one op: a residual connection and the
    /// ReLU after it in one pass over memory; the gradient is masked by the output.
    pub fn add_relu(&self, other: &Tensor) -> Tensor {
        self.binary(BinaryOp::AddRelu, other)
    }

    /// The larger of `self` and `other` elementwise (PyTorch's `maximum`; NaN wins).
    pub fn maximum(&self, other: &Tensor) -> Tensor {
        self.binary(BinaryOp::Maximum, other)
    }

    /// The smaller of `self` and `other` elementwise (PyTorch's `minimum`; NaN wins).
    pub fn minimum(&self, other: &Tensor) -> Tensor {
        self.binary(BinaryOp::Minimum, other)
    }

    /// A comparison's 0/1 mask, a constant (no gradient flows through it).
    fn compare(&self, op: BinaryOp, other: &Tensor) -> Tensor {
        crate::no_grad(|| self.binary(op, other))
    }

    /// 1 where `self > other`, else 0.
    pub fn gt(&self, other: &Tensor) -> Tensor {
        self.compare(BinaryOp::Greater, other)
    }

    /// 1 where `self ≥ other`, else 0.
    pub fn ge(&self, other: &Tensor) -> Tensor {
        self.compare(BinaryOp::GreaterEqual, other)
    }

    /// 1 where `self < other`, else 0.
    pub fn lt(&self, other: &Tensor) -> Tensor {
        other.gt(self)
    }

    /// 1 where `self ≤ other`, else 0.
    pub fn le(&self, other: &Tensor) -> Tensor {
        other.ge(self)
    }

    /// 1 where `self = other`, else 0 (PyTorch's `eq`).
    pub fn eq_elementwise(&self, other: &Tensor) -> Tensor {
        self.compare(BinaryOp::Equal, other)
    }

    /// 1 where this mask is 0, else 0.
    fn mask_complement(&self) -> Tensor {
        self.eq_elementwise(&Tensor::zeros([], self.device()))
    }

    /// `self` where `mask ≠ 0`, else exactly 0 (an infinite or NaN value outside the
    /// mask does not leak through, as it would through `self * mask`).
    pub fn keep_where(&self, mask: &Tensor) -> Tensor {
        self.binary(BinaryOp::KeepWhere, mask)
    }

    /// `if_true` where `mask ≠ 0`, else `if_false`, broadcasting all three (PyTorch's
    /// `torch.where` with a 0/1 mask such as a comparison gives).
    pub fn where_mask(mask: &Tensor, if_true: &Tensor, if_false: &Tensor) -> Tensor {
        if_true.keep_where(mask).add(&if_false.keep_where(&mask.mask_complement()))
    }

    /// This tensor with `value` where `mask ≠ 0` (PyTorch's `masked_fill`), e.g.
    /// `f32::NEG_INFINITY` at attention positions to hide.
    pub fn masked_fill(&self, mask: &Tensor, value: f32) -> Tensor {
        let filler = Tensor::full([], value, self.device());
        Tensor::where_mask(mask, &filler, self)
    }
}
