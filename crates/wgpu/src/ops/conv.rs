//! The three convolution passes on the GPU, each an implicit GEMM on the tiled GEMM kernel.

use kiln_tensor::{Activation, AxisSplit, Conv2dGeometry, StorageRef};

use crate::backend::WgpuBackend;
use crate::bindings::{ConvForwardBindings, ConvInputGradBindings, ConvWeightGradBindings, ReduceBindings};
use crate::gemm_tiles::GemmPass;
use crate::gemm_tiles::GemmTile;
use crate::gpu::grid;
use crate::kernels::Kernel;
use crate::params::{ConvParams, ReduceParams};

impl WgpuBackend {
    /// Records [`kiln_tensor::Backend::conv2d`].
    pub(crate) fn record_conv2d(
        &self,
        x: &StorageRef,
        weight: &StorageRef,
        bias: Option<&StorageRef>,
        g: &Conv2dGeometry,
        activation: Activation,
    ) -> StorageRef {
        let (m, n, k) =
            (g.out_channels, g.batch * g.out_h() * g.out_w(), g.in_channels * g.kernel_h * g.kernel_w);
        let out = self.f32s(m * n, "conv2d");
        let params = ConvParams::new(g, [m, n, k], bias.is_some(), activation);
        let bindings = ConvForwardBindings {
            input: Some(x),
            weight: Some(weight),
            bias,
            output: Some(&out),
            partial: None,
        }
        .slots();
        self.record_tiled(GemmPass::ConvForward, GemmTile::DEFAULT, [m, n, k], "conv2d", &params, &bindings);
        out
    }

    /// Records [`kiln_tensor::Backend::conv2d_backward_input`].
    pub(crate) fn record_conv2d_backward_input(
        &self,
        grad: &StorageRef,
        weight: &StorageRef,
        g: &Conv2dGeometry,
    ) -> StorageRef {
        let (m, n, k) = (g.in_channels, g.batch * g.in_h * g.in_w, g.out_channels * g.kernel_h * g.kernel_w);
        let out = self.f32s(m * n, "conv2d input gradient");
        let params = ConvParams::new(g, [m, n, k], false, Activation::Identity);
        let bindings =
            ConvInputGradBindings { grad: Some(grad), weight: Some(weight), dx: Some(&out), partial: None }
                .slots();
        self.record_tiled(
            GemmPass::ConvInputGrad,
            GemmTile::DEFAULT,
            [m, n, k],
            "conv2d input gradient",
            &params,
            &bindings,
        );
        out
    }

    /// Records [`kiln_tensor::Backend::conv2d_backward_weight`].
    pub(crate) fn record_conv2d_backward_weight(
        &self,
        x: &StorageRef,
        grad: &StorageRef,
        g: &Conv2dGeometry,
        with_bias: bool,
    ) -> (StorageRef, Option<StorageRef>) {
        let plane = g.out_h() * g.out_w();
        let (m, n, k) = (g.out_channels, g.in_channels * g.kernel_h * g.kernel_w, g.batch * plane);
        let dw = self.f32s(m * n, "conv2d weight gradient");
        let params = ConvParams::new(g, [m, n, k], false, Activation::Identity);
        let bindings =
            ConvWeightGradBindings { grad: Some(grad), input: Some(x), dw: Some(&dw), partial: None }.slots();
        self.record_tiled(
            GemmPass::ConvWeightGrad,
            GemmTile::DEFAULT,
            [m, n, k],
            "conv2d weight gradient",
            &params,
            &bindings,
        );
        let db = with_bias.then(|| {
            let db = self.f32s(g.out_channels, "conv2d bias gradient");
            let split = AxisSplit { outer: g.batch, len: g.out_channels, inner: plane };
            let bindings = ReduceBindings { in0: Some(grad), out: Some(&db), ..Default::default() }.slots();
            let params = ReduceParams::along(split, false);
            self.gpu.dispatch(
                Kernel::ChannelSum,
                "conv2d bias gradient",
                &params,
                &bindings,
                grid(g.out_channels, 1),
            );
            db
        });
        (dw, db)
    }
}
