//! Batch normalization on the GPU: one dispatch forward and one backward
//! (`channel_norm.wgsl`), the per-channel pairs (mean and variance, weight and bias
//! gradients) split into their own tensors by buffer copies.

use kiln_tensor::{AxisSplit, ChannelStatistics, StorageRef};

use crate::backend::WgpuBackend;
use crate::bindings::NormBindings;
use crate::gpu::grid;
use crate::kernels::Kernel;
use crate::params::ChannelNormParams;

impl WgpuBackend {
    /// Two per-channel vectors out of a `[2, channels]` buffer.
    pub(super) fn split_pair(
        &self,
        pair: &StorageRef,
        channels: usize,
        op: &str,
    ) -> (StorageRef, StorageRef) {
        let (first, second) = (self.f32s(channels, op), self.f32s(channels, op));
        self.gpu.copy_f32s(pair, 0, &first, channels);
        self.gpu.copy_f32s(pair, channels, &second, channels);
        (first, second)
    }

    /// A `[2, channels]` buffer holding `first`, then `second`.
    fn join_pair(&self, first: &StorageRef, second: &StorageRef, channels: usize, op: &str) -> StorageRef {
        let pair = self.f32s(2 * channels, op);
        self.gpu.copy_f32s(first, 0, &pair, channels);
        self.gpu.copy_f32s_to(second, &pair, channels, channels);
        pair
    }

    /// Records [`kiln_tensor::Backend::channel_norm`].
    pub(crate) fn record_channel_norm(
        &self,
        x: &StorageRef,
        weight: &StorageRef,
        bias: &StorageRef,
        given: Option<(&StorageRef, &StorageRef)>,
        split: AxisSplit,
        eps: f32,
    ) -> (StorageRef, StorageRef, StorageRef) {
        let channels = split.len;
        let out = self.f32s(x.len(), "batch norm");
        let stats = match given {
            Some((mean, var)) => self.join_pair(mean, var, channels, "batch norm"),
            None => self.f32s(2 * channels, "batch norm"),
        };
        let bindings = NormBindings {
            x: Some(x),
            weight: Some(weight),
            bias: Some(bias),
            stats: Some(&stats),
            out: Some(&out),
            ..Default::default()
        }
        .slots();
        let params = ChannelNormParams::new(split, given.is_none(), eps);
        self.gpu.dispatch(Kernel::ChannelNorm, "batch norm", &params, &bindings, grid(channels, 1));
        let (mean, var) = match given {
            Some((mean, var)) => (mean.clone(), var.clone()),
            None => self.split_pair(&stats, channels, "batch norm"),
        };
        (out, mean, var)
    }

    /// Records [`kiln_tensor::Backend::channel_norm_backward`].
    pub(crate) fn record_channel_norm_backward(
        &self,
        x: &StorageRef,
        grad: &StorageRef,
        weight: &StorageRef,
        statistics: ChannelStatistics,
        split: AxisSplit,
        batch_statistics: bool,
    ) -> (StorageRef, StorageRef, StorageRef) {
        let channels = split.len;
        let stats = self.join_pair(statistics.mean, statistics.var, channels, "batch norm backward");
        let dx = self.f32s(x.len(), "batch norm backward");
        let param_grads = self.f32s(2 * channels, "batch norm backward");
        let bindings = NormBindings {
            x: Some(x),
            grad: Some(grad),
            weight: Some(weight),
            stats: Some(&stats),
            out: Some(&dx),
            param_grads: Some(&param_grads),
            ..Default::default()
        }
        .slots();
        let params = ChannelNormParams::new(split, batch_statistics, statistics.eps);
        self.gpu.dispatch(
            Kernel::ChannelNormBackward,
            "batch norm backward",
            &params,
            &bindings,
            grid(channels, 1),
        );
        let (dweight, dbias) = self.split_pair(&param_grads, channels, "batch norm backward");
        (dx, dweight, dbias)
    }
}
