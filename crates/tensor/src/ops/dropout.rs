//! Inverted dropout with a reproducible mask: element `i` is kept when
//! [`DropoutMask::keeps`]`(i, p)` (a counter-based hash of the seed and the element's
//! index in the mask stream), and kept elements are scaled by `1/(1−p)` so evaluation
//! needs no rescaling. The backward pass applies the same mask to the gradient.

use super::expect_f32;
use crate::autograd::BackwardRule;
use crate::{DropoutMask, Tensor};

struct DropoutBackward {
    p: f32,
    mask: DropoutMask,
}

impl BackwardRule for DropoutBackward {
    fn backward(&self, _inputs: &[Tensor], _output: &Tensor, grad: Tensor) -> Vec<Option<Tensor>> {
        let grad = &grad;
        let storage = grad.device().backend().dropout(grad.storage(), self.p, self.mask);
        vec![Some(Tensor::from_storage(storage, grad.shape().clone(), grad.device()))]
    }
}

impl Tensor {
    /// Zeroes each element with probability `p` (mask drawn from `seed`) and scales the
    /// rest by `1/(1−p)`. Call it in training only; `p = 0` returns the input.
    pub fn dropout(&self, p: f32, seed: u64) -> Tensor {
        self.dropout_with(p, DropoutMask::new(seed))
    }

    /// [`Tensor::dropout`] with the mask window `mask`: element `i` uses the stream's
    /// element `mask.first_index + i`, so a shard of a batch can draw its part of the
    /// whole batch's mask.
    pub fn dropout_with(&self, p: f32, mask: DropoutMask) -> Tensor {
        expect_f32("dropout", self);
        assert!((0.0..1.0).contains(&p), "dropout: p must be in [0, 1), got {p}");
        if p == 0.0 {
            return self.clone();
        }
        let storage = self.device().backend().dropout(self.storage(), p, mask);
        Tensor::from_op(storage, self.shape().clone(), &[self], DropoutBackward { p, mask })
    }
}
