//! Matrix products, with either operand read transposed (so `x · Wᵀ` for a dense layer
//! with `W` stored `[out, in]` needs no copy), and their gradients: 2-D, and batched
//! over leading dimensions that broadcast as NumPy's (PyTorch's `matmul`).

use super::{expect_f32, expect_rank, expect_same_device};
use crate::autograd::BackwardRule;
use crate::{MatmulBatch, MatmulDims, Shape, Tensor};

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
        // A batched product's operand broadcast over batch dimensions gets the sum.
        vec![ga.map(|g| g.sum_to(a.shape())), gb.map(|g| g.sum_to(b.shape()))]
    }
}

impl Tensor {
    /// The matrix product `self · other` of 2-D tensors `[m, k] · [k, n]`.
    pub fn matmul(&self, other: &Tensor) -> Tensor {
        self.matmul_with(other, false, false)
    }

    /// `op(self) · op(other)`, where `op` transposes the operand whose flag is set:
    /// `x.matmul_with(&w, false, true)` is `x · wᵀ`.
    ///
    /// Operands of more than 2 dimensions are batches of matrices in their last two
    /// dimensions; the leading (batch) dimensions broadcast, so `[B, M, K] · [K, N]`
    /// multiplies every matrix by one, and `[B, H, T, D] · [B, H, D, T]` is attention's
    /// score product.
    pub fn matmul_with(&self, other: &Tensor, trans_a: bool, trans_b: bool) -> Tensor {
        expect_f32("matmul", self);
        expect_f32("matmul", other);
        expect_same_device("matmul", self, other);
        if self.shape().rank() > 2 || other.shape().rank() > 2 {
            return self.batched_matmul(other, trans_a, trans_b);
        }
        expect_rank("matmul", "the left operand", self, 2);
        expect_rank("matmul", "the right operand", other, 2);
        let (m, k, n) = self.matmul_sizes(other, trans_a, trans_b);
        let dims = MatmulDims { m, k, n, trans_a, trans_b };
        let storage = self.device().backend().matmul(self.storage(), other.storage(), dims);
        Tensor::from_op(storage, [m, n].into(), &[self, other], MatmulBackward { trans_a, trans_b })
    }

    /// `(m, k, n)` of the product of the matrices in the last two dimensions.
    fn matmul_sizes(&self, other: &Tensor, trans_a: bool, trans_b: bool) -> (usize, usize, usize) {
        let matrix = |t: &Tensor, which: &str| -> [usize; 2] {
            let d = t.dims();
            assert!(d.len() >= 2, "matmul: {which} must have at least 2 dimensions, got shape {}", t.shape());
            [d[d.len() - 2], d[d.len() - 1]]
        };
        let (a, b) = (matrix(self, "the left operand"), matrix(other, "the right operand"));
        let (m, k) = if trans_a { (a[1], a[0]) } else { (a[0], a[1]) };
        let (k2, n) = if trans_b { (b[1], b[0]) } else { (b[0], b[1]) };
        assert_eq!(
            k,
            k2,
            "matmul: shapes {} and {} (transposed: {trans_a}, {trans_b}) do not agree on the inner dimension",
            self.shape(),
            other.shape()
        );
        (m, k, n)
    }

    /// [`Tensor::matmul_with`] of batches: the batch dimensions broadcast; an operand
    /// whose batch is one matrix is read again for every product, one whose batch
    /// broadcasts otherwise is copied out to the whole batch first.
    fn batched_matmul(&self, other: &Tensor, trans_a: bool, trans_b: bool) -> Tensor {
        let (m, k, n) = self.matmul_sizes(other, trans_a, trans_b);
        let batch_of = |t: &Tensor| Shape::new(&t.dims()[..t.dims().len() - 2]);
        let (batch_a, batch_b) = (batch_of(self), batch_of(other));
        let batch = batch_a.broadcast(&batch_b).unwrap_or_else(|| {
            panic!(
                "matmul: the batch dimensions of shapes {} and {} do not broadcast",
                self.shape(),
                other.shape()
            )
        });
        // Each operand as a whole batch, or as one matrix read for every product.
        let operand = |t: &Tensor, own: &Shape| -> (Tensor, usize) {
            let matrix: Vec<usize> = t.dims()[t.dims().len() - 2..].to_vec();
            if own.numel() == 1 {
                (t.clone(), 0)
            } else if *own == batch {
                (t.clone(), matrix.iter().product())
            } else {
                let full: Vec<usize> = batch.dims().iter().chain(&matrix).copied().collect();
                (t.broadcast_to(full), matrix.iter().product())
            }
        };
        let ((a, a_stride), (b, b_stride)) = (operand(self, &batch_a), operand(other, &batch_b));
        let dims = MatmulDims { m, k, n, trans_a, trans_b };
        let count = batch.numel();
        let storage = self.device().backend().batched_matmul(
            a.storage(),
            b.storage(),
            dims,
            MatmulBatch { count, a_stride, b_stride },
        );
        let shape: Vec<usize> = batch.dims().iter().copied().chain([m, n]).collect();
        // The operands as used (broadcast copies included) are the rule's inputs, so
        // their gradients flow back through the copies to `self` and `other`.
        Tensor::from_op(storage, shape.into(), &[&a, &b], MatmulBackward { trans_a, trans_b })
    }
}
