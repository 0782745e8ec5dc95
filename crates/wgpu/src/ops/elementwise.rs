//! Elementwise kernels on the GPU: fill, unary ops and their gradients, broadcasting binary
//! ops, dropout.

use kiln_tensor::{BinaryOp, DropoutMask, EpilogueDropout, Shape, StorageRef, UnaryOp};

use crate::backend::{WIDTH, WgpuBackend};
use crate::gpu::grid;
use crate::kernels::Kernel;
use crate::op_codes::{BinaryCode, UnaryCode};
use crate::params::{DropoutParams, ElementwiseParams, MaskParams};

impl WgpuBackend {
    /// Records [`kiln_tensor::Backend::full`].
    pub(crate) fn record_full(&self, len: usize, value: f32) -> StorageRef {
        let out = self.f32s(len, "full");
        let params = ElementwiseParams::fill(len, value);
        self.gpu.dispatch(Kernel::Fill, "full", &params, &[None, None, None, Some(&out)], grid(len, WIDTH));
        out
    }

    /// Records [`kiln_tensor::Backend::unary`].
    pub(crate) fn record_unary(&self, op: UnaryOp, x: &StorageRef) -> StorageRef {
        let n = x.len();
        let out = self.f32s(n, "unary");
        let (code, [scalar, bound]) = UnaryCode::of(op);
        let params = ElementwiseParams::unary(n, code as u32, scalar, bound);
        self.gpu.dispatch(
            Kernel::Unary,
            "unary",
            &params,
            &[Some(x), None, None, Some(&out)],
            grid(n, WIDTH),
        );
        out
    }

    /// Records [`kiln_tensor::Backend::unary_backward`].
    pub(crate) fn record_unary_backward(
        &self,
        op: UnaryOp,
        x: &StorageRef,
        y: &StorageRef,
        grad: &StorageRef,
    ) -> StorageRef {
        let n = x.len();
        let out = self.f32s(n, "unary backward");
        let (code, [scalar, bound]) = UnaryCode::of(op);
        let params = ElementwiseParams::unary(n, code as u32, scalar, bound);
        let bindings = [Some(x), Some(y), Some(grad), Some(&out)];
        self.gpu.dispatch(Kernel::UnaryBackward, "unary backward", &params, &bindings, grid(n, WIDTH));
        out
    }

    /// Records [`kiln_tensor::Backend::binary`].
    pub(crate) fn record_binary(
        &self,
        op: BinaryOp,
        a: &StorageRef,
        a_shape: &Shape,
        b: &StorageRef,
        b_shape: &Shape,
        out_shape: &Shape,
    ) -> StorageRef {
        let n = out_shape.numel();
        let out = self.f32s(n, "binary");
        let params = ElementwiseParams::broadcast(BinaryCode::of(op) as u32, a_shape, b_shape, out_shape);
        self.gpu.dispatch(
            Kernel::Binary,
            "binary",
            &params,
            &[Some(a), Some(b), None, Some(&out)],
            grid(n, WIDTH),
        );
        out
    }

    /// Records [`kiln_tensor::Backend::broadcast_to`].
    pub(crate) fn record_broadcast_to(&self, x: &StorageRef, shape: &Shape, out_shape: &Shape) -> StorageRef {
        let n = out_shape.numel();
        let out = self.f32s(n, "broadcast_to");
        let params = ElementwiseParams::broadcast(BinaryCode::BroadcastCopy as u32, shape, shape, out_shape);
        self.gpu.dispatch(
            Kernel::Binary,
            "broadcast_to",
            &params,
            &[Some(x), Some(x), None, Some(&out)],
            grid(n, WIDTH),
        );
        out
    }

    /// Records [`kiln_tensor::Backend::dropout`].
    pub(crate) fn record_dropout(&self, x: &StorageRef, p: f32, mask: DropoutMask) -> StorageRef {
        let n = x.len();
        let out = self.f32s(n, "dropout");
        let params = DropoutParams { n: n as u32, mask: MaskParams::new(EpilogueDropout { p, mask }) };
        self.gpu.dispatch(Kernel::Dropout, "dropout", &params, &[Some(x), Some(&out)], grid(n, WIDTH));
        out
    }
}
