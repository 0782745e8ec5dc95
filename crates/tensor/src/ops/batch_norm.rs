//! Batch normalization as one op: each channel (axis 1) of `[batch, channels, ..]`
//! normalized by its mean and variance — the batch's own or given running statistics —
//! then scaled by `weight` and shifted by `bias`, in one kernel forward and one
//! backward (instead of a chain of reductions and broadcast ops, each a pass over the
//! whole input).

use super::{expect_f32, expect_same_device};
use crate::autograd::BackwardRule;
use crate::backend::ChannelStatistics;
use crate::{AxisSplit, StorageRef, Tensor};

/// The statistics a batch normalization divides by.
#[derive(Clone, Copy, Debug)]
pub enum BatchStatistics<'a> {
    /// The batch's own mean and (population) variance per channel: training.
    Batch,
    /// Given per-channel `mean` and `var` (running statistics): evaluation. They are
    /// constants to the tape (no gradient flows into them).
    Given {
        /// Mean per channel, `[channels]`.
        mean: &'a Tensor,
        /// Variance per channel, `[channels]`.
        var: &'a Tensor,
    },
}

/// What [`Tensor::batch_norm`] returns: the normalized output and the statistics used.
#[derive(Clone, Debug)]
pub struct BatchNormOutput {
    /// The normalized, scaled and shifted input (same shape).
    pub output: Tensor,
    /// Mean per channel, `[channels]` (the batch's, or the given one).
    pub mean: Tensor,
    /// Population variance per channel, `[channels]` (the batch's, or the given one).
    pub var: Tensor,
}

struct BatchNormBackward {
    split: AxisSplit,
    mean: StorageRef,
    var: StorageRef,
    batch_statistics: bool,
    eps: f32,
}

impl BackwardRule for BatchNormBackward {
    fn backward(&self, inputs: &[Tensor], _output: &Tensor, grad: Tensor) -> Vec<Option<Tensor>> {
        let (x, weight, bias) = (&inputs[0], &inputs[1], &inputs[2]);
        let statistics = ChannelStatistics { mean: &self.mean, var: &self.var, eps: self.eps };
        let (dx, dweight, dbias) = x.device().backend().channel_norm_backward(
            x.storage(),
            grad.storage(),
            weight.storage(),
            statistics,
            self.split,
            self.batch_statistics,
        );
        let device = x.device();
        vec![
            x.requires_grad().then(|| Tensor::from_storage(dx, x.shape().clone(), device)),
            weight.requires_grad().then(|| Tensor::from_storage(dweight, weight.shape().clone(), device)),
            bias.requires_grad().then(|| Tensor::from_storage(dbias, bias.shape().clone(), device)),
        ]
    }
}

impl Tensor {
    /// Batch normalization of `self` (`[batch, channels, ..]`, rank 2 or more), PyTorch's
    /// `F.batch_norm`: `(x − mean)/√(var + eps)·weight + bias` per channel, with the
    /// batch's statistics over every axis but 1 ([`BatchStatistics::Batch`]) or given
    /// ones. Returns the statistics used, from which a layer updates its running ones.
    ///
    /// ```
    /// use kiln_cpu::CpuDevice;
    /// use kiln_tensor::{BatchStatistics, Device, Tensor};
    /// let device = Device::cpu();
    /// let x = Tensor::from_vec([2, 1, 2], vec![1.0, 3.0, 5.0, 7.0], &device);
    /// let (weight, bias) = (Tensor::ones([1], &device), Tensor::zeros([1], &device));
    /// let normalized = x.batch_norm(&weight, &bias, BatchStatistics::Batch, 0.0);
    /// assert_eq!(normalized.mean.to_vec().unwrap(), vec![4.0]);
    /// assert_eq!(normalized.var.to_vec().unwrap(), vec![5.0]);
    /// ```
    pub fn batch_norm(
        &self,
        weight: &Tensor,
        bias: &Tensor,
        statistics: BatchStatistics,
        eps: f32,
    ) -> BatchNormOutput {
        expect_f32("batch_norm", self);
        assert!(
            self.shape().rank() >= 2,
            "batch_norm: input must be [batch, channels, ..], got shape {}",
            self.shape()
        );
        assert!(eps >= 0.0, "batch_norm: eps must not be negative, got {eps}");
        let channels = self.dims()[1];
        let per_channel = |what: &str, t: &Tensor| {
            expect_f32("batch_norm", t);
            expect_same_device("batch_norm", self, t);
            assert!(
                t.dims() == [channels],
                "batch_norm: {what} must have shape [{channels}] for input shape {}, got shape {}",
                self.shape(),
                t.shape()
            );
        };
        per_channel("weight", weight);
        per_channel("bias", bias);
        let given = match statistics {
            BatchStatistics::Batch => None,
            BatchStatistics::Given { mean, var } => {
                per_channel("mean", mean);
                per_channel("var", var);
                Some((mean.storage(), var.storage()))
            }
        };
        let split = self.shape().split_at_axis(1);
        let (output, mean, var) = self.device().backend().channel_norm(
            self.storage(),
            weight.storage(),
            bias.storage(),
            given,
            split,
            eps,
        );
        let rule = BatchNormBackward {
            split,
            mean: mean.clone(),
            var: var.clone(),
            batch_statistics: given.is_none(),
            eps,
        };
        let device = self.device();
        BatchNormOutput {
            output: Tensor::from_op(output, self.shape().clone(), &[self, weight, bias], rule),
            mean: Tensor::from_storage(mean, [channels], device),
            var: Tensor::from_storage(var, [channels], device),
        }
    }
}
