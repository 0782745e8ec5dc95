//! Softmax cross-entropy from logits and integer labels, fused and numerically stable
//! (log-sum-exp with the maximum subtracted), averaged over the batch.

use super::{expect_f32, expect_rank, expect_same_device};
use crate::autograd::BackwardRule;
use crate::{DType, StorageRef, Tensor};

struct CrossEntropyBackward {
    probs: StorageRef,
}

impl BackwardRule for CrossEntropyBackward {
    fn backward(&self, inputs: &[Tensor], _output: &Tensor, grad: Tensor) -> Vec<Option<Tensor>> {
        let grad = &grad;
        let (logits, labels) = (&inputs[0], &inputs[1]);
        let (n, classes) = (logits.dims()[0], logits.dims()[1]);
        let storage = logits.device().backend().cross_entropy_backward(
            &self.probs,
            labels.storage(),
            grad.storage(),
            n,
            classes,
        );
        vec![Some(Tensor::from_storage(storage, logits.shape().clone(), logits.device())), None]
    }
}

impl Tensor {
    /// Mean softmax cross-entropy of these logits `[N, classes]` against i32 class
    /// `labels` `[N]`: `mean(log Σ e^logits − logits[label])`, a scalar. Labels outside
    /// `0..classes` panic.
    pub fn cross_entropy(&self, labels: &Tensor) -> Tensor {
        expect_f32("cross_entropy", self);
        expect_rank("cross_entropy", "logits", self, 2);
        expect_same_device("cross_entropy", self, labels);
        assert_eq!(labels.dtype(), DType::I32, "cross_entropy: labels must be i32, got {labels:?}");
        let (n, classes) = (self.dims()[0], self.dims()[1]);
        assert_eq!(
            labels.dims(),
            &[n],
            "cross_entropy: logits {} need labels of shape [{n}], got {}",
            self.shape(),
            labels.shape()
        );
        let (loss, probs) =
            self.device().backend().cross_entropy(self.storage(), labels.storage(), n, classes);
        Tensor::from_op(loss, crate::Shape::scalar(), &[self, labels], CrossEntropyBackward { probs })
    }
}
