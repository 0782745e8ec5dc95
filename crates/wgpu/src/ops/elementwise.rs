//! Elementwise kernels on the GPU: fill, unary ops and their gradients, broadcasting binary
//! ops, dropout.

use kiln_tensor::{BinaryOp, DropoutMask, EpilogueDropout, Shape, StorageRef, StridedView, UnaryOp};

use crate::backend::{WIDTH, WgpuBackend};
use crate::bindings::{DropoutBindings, ElementwiseBindings};
use crate::gpu::grid;
use crate::kernels::Kernel;
use crate::op_codes::BinaryCode;
use crate::params::{DropoutParams, ElementwiseParams, MaskParams};

impl WgpuBackend {
    /// Records [`kiln_tensor::Backend::full`].
    pub(crate) fn record_full(&self, len: usize, value: f32) -> StorageRef {
        let out = self.f32s(len, "full");
        let params = ElementwiseParams::fill(len, value);
        self.gpu.dispatch(
            Kernel::Fill,
            "full",
            &params,
            &ElementwiseBindings { out: Some(&out), ..Default::default() }.slots(),
            grid(len, WIDTH),
        );
        out
    }

    /// Records [`kiln_tensor::Backend::unary`].
    pub(crate) fn record_unary(&self, op: UnaryOp, x: &StorageRef) -> StorageRef {
        self.record_unary_code(op.code(), op.parameters(), x)
    }

    /// The unary kernel with op code `code` and parameters `[scalar, bound]`.
    fn record_unary_code(&self, code: u32, [scalar, bound]: [f32; 2], x: &StorageRef) -> StorageRef {
        let n = x.len();
        let out = self.f32s(n, "unary");
        let params = ElementwiseParams::unary(n, code, scalar, bound);
        self.gpu.dispatch(
            Kernel::Unary,
            "unary",
            &params,
            &ElementwiseBindings { in0: Some(x), out: Some(&out), ..Default::default() }.slots(),
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
        let [scalar, bound] = op.parameters();
        let params = ElementwiseParams::unary(n, op.code(), scalar, bound);
        let bindings =
            ElementwiseBindings { in0: Some(x), in1: Some(y), in2: Some(grad), out: Some(&out) }.slots();
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
            &ElementwiseBindings { in0: Some(a), in1: Some(b), out: Some(&out), ..Default::default() }
                .slots(),
            grid(n, WIDTH),
        );
        out
    }

    /// Records [`kiln_tensor::Backend::gather_view`].
    pub(crate) fn record_gather_view(&self, x: &StorageRef, view: &StridedView) -> StorageRef {
        let n = view.numel();
        let out = self.f32s(n, "gather_view");
        let params = ElementwiseParams::view(view);
        self.gpu.dispatch(
            Kernel::GatherView,
            "gather_view",
            &params,
            &ElementwiseBindings { in0: Some(x), out: Some(&out), ..Default::default() }.slots(),
            grid(n, WIDTH),
        );
        out
    }

    /// Records [`kiln_tensor::Backend::scatter_view`].
    pub(crate) fn record_scatter_view(&self, dst: &StorageRef, view: &StridedView, src: &StorageRef) {
        let params = ElementwiseParams::view(view);
        let bindings = ElementwiseBindings { in0: Some(src), out: Some(dst), ..Default::default() }.slots();
        self.gpu.dispatch(Kernel::ScatterView, "scatter_view", &params, &bindings, grid(view.numel(), WIDTH));
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
            &ElementwiseBindings { in0: Some(x), in1: Some(x), out: Some(&out), ..Default::default() }
                .slots(),
            grid(n, WIDTH),
        );
        out
    }

    /// Records [`kiln_tensor::Backend::dropout`].
    pub(crate) fn record_dropout(&self, x: &StorageRef, p: f32, mask: DropoutMask) -> StorageRef {
        let n = x.len();
        let out = self.f32s(n, "dropout");
        let params = DropoutParams { n: n as u32, mask: MaskParams::new(EpilogueDropout { p, mask }) };
        self.gpu.dispatch(
            Kernel::Dropout,
            "dropout",
            &params,
            &DropoutBindings { x: Some(x), out: Some(&out) }.slots(),
            grid(n, WIDTH),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use kiln_tensor::{Backend, Tensor, UNARY_DEFINITIONS};

    use crate::WgpuBackend;

    #[test]
    fn an_op_code_outside_the_table_gives_nan_not_another_op() {
        let device = match crate::shared() {
            Ok((device, _)) => device,
            Err(err) if std::env::var_os("CI").is_some() => panic!("CI needs a GPU adapter: {err}"),
            Err(err) => return eprintln!("skipping: {err}"),
        };
        let backend = device.backend().as_any().downcast_ref::<WgpuBackend>().expect("a wgpu device");
        let x = Tensor::from_vec([3], vec![-1.0, 0.5, 2.0], &device);
        let unknown = UNARY_DEFINITIONS.len() as u32;
        let out = backend.record_unary_code(unknown, [1.0, 2.0], x.storage());
        let values = backend.to_vec_f32(&out).unwrap();
        assert!(values.iter().all(|v| v.is_nan()), "{values:?}");
        let known = backend.record_unary_code(unknown - 1, [1.0, 2.0], x.storage());
        assert!(backend.to_vec_f32(&known).unwrap().iter().all(|v| v.is_finite()), "the last code is an op");
    }
}
