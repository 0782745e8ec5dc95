//! 2-D matrix products, with either operand read transposed (so `x · Wᵀ` for a dense
//! layer with `W` stored `[out, in]` needs no copy), and their gradients.

use super::{expect_f32, expect_rank, expect_same_device};
use crate::autograd::BackwardRule;
use crate::{MatmulDims, Tensor};

struct MatmulBackward {
    trans_a: bool,
    trans_b: bool,
}

impl BackwardRule for MatmulBackward {
    fn backward(&self, inputs: &[Tensor], _output: &Tensor, grad: Tensor) -> Vec<Option<Tensor>> {
        let grad = &grad;
        let (a, b) = (&inputs[0], &inputs[1]);
        let (ta, tb) = (self.trans_a, self.trans_b);
        // dop(A) = dC·op(B)ᵀ and dop(B) = op(A)ᵀ·dC, stored back in A's and B's layouts.
        let ga = a
            .requires_grad()
            .then(|| if ta { b.matmul_with(grad, tb, true) } else { grad.matmul_with(b, false, !tb) });
        let gb = b
            .requires_grad()
            .then(|| if tb { grad.matmul_with(a, true, ta) } else { a.matmul_with(grad, !ta, false) });
        vec![ga, gb]
    }
}

impl Tensor {
    /// The matrix product `self · other` of 2-D tensors `[m, k] · [k, n]`.
    pub fn matmul(&self, other: &Tensor) -> Tensor {
        self.matmul_with(other, false, false)
    }

    /// `op(self) · op(other)`, where `op` transposes the operand whose flag is set:
    /// `x.matmul_with(&w, false, true)` is `x · wᵀ`.
    pub fn matmul_with(&self, other: &Tensor, trans_a: bool, trans_b: bool) -> Tensor {
        expect_f32("matmul", self);
        expect_f32("matmul", other);
        expect_same_device("matmul", self, other);
        expect_rank("matmul", "the left operand", self, 2);
        expect_rank("matmul", "the right operand", other, 2);
        let (a, b) = (self.dims(), other.dims());
        let (m, k) = if trans_a { (a[1], a[0]) } else { (a[0], a[1]) };
        let (k2, n) = if trans_b { (b[1], b[0]) } else { (b[0], b[1]) };
        assert_eq!(
            k,
            k2,
            "matmul: shapes {} and {} (transposed: {trans_a}, {trans_b}) do not agree on the inner dimension",
            self.shape(),
            other.shape()
        );
        let dims = MatmulDims { m, k, n, trans_a, trans_b };
        let storage = self.device().backend().matmul(self.storage(), other.storage(), dims);
        Tensor::from_op(storage, [m, n].into(), &[self, other], MatmulBackward { trans_a, trans_b })
    }
}
