//! Layer normalization on the GPU (`row_norm.wgsl`): one dispatch forward; backward one
//! for the input gradient and, where the forward pass had a weight or a bias, one for
//! their gradients.

use kiln_tensor::{AxisSplit, RowAffine, StorageRef};

use crate::backend::{WIDTH, WgpuBackend};
use crate::bindings::NormBindings;
use crate::gpu::grid;
use crate::kernels::Kernel;
use crate::params::RowNormParams;

impl WgpuBackend {
    /// Records [`kiln_tensor::Backend::row_norm`].
    pub(crate) fn record_row_norm(
        &self,
        x: &StorageRef,
        affine: RowAffine,
        split: AxisSplit,
        eps: f32,
    ) -> (StorageRef, StorageRef) {
        let out = self.f32s(x.len(), "layer norm");
        let stats = self.f32s(2 * split.outer, "layer norm");
        let bindings = NormBindings {
            x: Some(x),
            weight: affine.weight,
            bias: affine.bias,
            stats: Some(&stats),
            out: Some(&out),
            ..Default::default()
        }
        .slots();
        let params = RowNormParams::new(split, affine.weight.is_some(), affine.bias.is_some(), eps);
        self.gpu.dispatch(Kernel::RowNorm, "layer norm", &params, &bindings, grid(split.outer, WIDTH));
        (out, stats)
    }

    /// Records [`kiln_tensor::Backend::row_norm_backward`].
    pub(crate) fn record_row_norm_backward(
        &self,
        x: &StorageRef,
        grad: &StorageRef,
        weight: Option<&StorageRef>,
        stats: &StorageRef,
        split: AxisSplit,
    ) -> (StorageRef, StorageRef, StorageRef) {
        let dx = self.f32s(x.len(), "layer norm backward");
        let param_grads = self.f32s(2 * split.len, "layer norm backward");
        let bindings = NormBindings {
            x: Some(x),
            grad: Some(grad),
            weight,
            stats: Some(stats),
            out: Some(&dx),
            param_grads: Some(&param_grads),
            ..Default::default()
        }
        .slots();
        let params = RowNormParams::new(split, weight.is_some(), false, 0.0);
        let label = "layer norm backward";
        self.gpu.dispatch(Kernel::RowNormBackward, label, &params, &bindings, grid(split.outer, WIDTH));
        self.gpu.dispatch(Kernel::RowNormParamGrads, label, &params, &bindings, grid(split.len, 1));
        let (dweight, dbias) = self.split_pair(&param_grads, split.len, label);
        (dx, dweight, dbias)
    }
}
