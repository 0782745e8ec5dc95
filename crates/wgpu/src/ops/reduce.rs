//! Reductions along an axis, softmax and softmax cross-entropy on the GPU.

use kiln_tensor::{AxisSplit, DType, StorageRef};

use crate::backend::{WIDTH, WgpuBackend};
use crate::bindings::ReduceBindings;
use crate::gpu::grid;
use crate::kernels::Kernel;
use crate::params::ReduceParams;

impl WgpuBackend {
    /// Records [`kiln_tensor::Backend::sum_axis`].
    pub(crate) fn record_sum_axis(&self, x: &StorageRef, split: AxisSplit) -> StorageRef {
        let lanes = split.outer * split.inner;
        let out = self.f32s(lanes, "sum");
        let bindings = ReduceBindings { in0: Some(x), out: Some(&out), ..Default::default() }.slots();
        self.gpu.dispatch(
            Kernel::SumAxis,
            "sum",
            &ReduceParams::along(split, false),
            &bindings,
            grid(lanes, 1),
        );
        out
    }

    /// Records [`kiln_tensor::Backend::max_axis`].
    pub(crate) fn record_max_axis(&self, x: &StorageRef, split: AxisSplit) -> (StorageRef, StorageRef) {
        let lanes = split.outer * split.inner;
        let values = self.f32s(lanes, "max");
        let argmax = self.gpu.alloc(lanes, DType::I32, "max");
        let bindings = ReduceBindings {
            in0: Some(x),
            out: Some(&values),
            out_ints: Some(&argmax),
            ..Default::default()
        }
        .slots();
        self.gpu.dispatch(
            Kernel::MaxAxis,
            "max",
            &ReduceParams::along(split, false),
            &bindings,
            grid(lanes, WIDTH),
        );
        (values, argmax)
    }

    /// Records [`kiln_tensor::Backend::max_axis_backward`].
    pub(crate) fn record_max_axis_backward(
        &self,
        grad: &StorageRef,
        argmax: &StorageRef,
        split: AxisSplit,
    ) -> StorageRef {
        let n = split.outer * split.len * split.inner;
        let out = self.f32s(n, "max backward");
        let bindings =
            ReduceBindings { in0: Some(grad), ints: Some(argmax), out: Some(&out), ..Default::default() }
                .slots();
        self.gpu.dispatch(
            Kernel::MaxAxisBackward,
            "max backward",
            &ReduceParams::along(split, false),
            &bindings,
            grid(n, WIDTH),
        );
        out
    }

    /// Records [`kiln_tensor::Backend::softmax`].
    pub(crate) fn record_softmax(&self, x: &StorageRef, split: AxisSplit, log: bool) -> StorageRef {
        let out = self.f32s(x.len(), "softmax");
        let bindings = ReduceBindings { in0: Some(x), out: Some(&out), ..Default::default() }.slots();
        let lanes = split.outer * split.inner;
        self.gpu.dispatch(
            Kernel::Softmax,
            "softmax",
            &ReduceParams::along(split, log),
            &bindings,
            grid(lanes, WIDTH),
        );
        out
    }

    /// Records [`kiln_tensor::Backend::softmax_backward`].
    pub(crate) fn record_softmax_backward(
        &self,
        y: &StorageRef,
        grad: &StorageRef,
        split: AxisSplit,
        log: bool,
    ) -> StorageRef {
        let out = self.f32s(y.len(), "softmax backward");
        let bindings =
            ReduceBindings { in0: Some(y), in1: Some(grad), out: Some(&out), ..Default::default() }.slots();
        let lanes = split.outer * split.inner;
        let params = ReduceParams::along(split, log);
        self.gpu.dispatch(
            Kernel::SoftmaxBackward,
            "softmax backward",
            &params,
            &bindings,
            grid(lanes, WIDTH),
        );
        out
    }

    /// Records [`kiln_tensor::Backend::normalize_axis`].
    pub(crate) fn record_normalize(
        &self,
        x: &StorageRef,
        split: AxisSplit,
        eps: f32,
    ) -> (StorageRef, StorageRef) {
        let lanes = split.outer * split.inner;
        let (out, rstd) = (self.f32s(x.len(), "normalize"), self.f32s(lanes, "normalize"));
        let bindings =
            ReduceBindings { in0: Some(x), out: Some(&out), out2: Some(&rstd), ..Default::default() }.slots();
        let params = ReduceParams::normalize(split, eps);
        self.gpu.dispatch(Kernel::Normalize, "normalize", &params, &bindings, grid(lanes, WIDTH));
        (out, rstd)
    }

    /// Records [`kiln_tensor::Backend::normalize_axis_backward`]; `rstd` is read
    /// through the family's second output binding.
    pub(crate) fn record_normalize_backward(
        &self,
        y: &StorageRef,
        rstd: &StorageRef,
        grad: &StorageRef,
        split: AxisSplit,
    ) -> StorageRef {
        let out = self.f32s(y.len(), "normalize backward");
        let bindings = ReduceBindings {
            in0: Some(y),
            in1: Some(grad),
            out: Some(&out),
            out2: Some(rstd),
            ..Default::default()
        }
        .slots();
        let params = ReduceParams::normalize(split, 0.0);
        let lanes = split.outer * split.inner;
        self.gpu.dispatch(
            Kernel::NormalizeBackward,
            "normalize backward",
            &params,
            &bindings,
            grid(lanes, WIDTH),
        );
        out
    }

    /// Records [`kiln_tensor::Backend::cross_entropy`].
    pub(crate) fn record_cross_entropy(
        &self,
        logits: &StorageRef,
        labels: &StorageRef,
        n: usize,
        classes: usize,
    ) -> (StorageRef, StorageRef) {
        let probs = self.f32s(n * classes, "cross_entropy");
        let rows = self.f32s(n, "cross_entropy");
        let loss = self.f32s(1, "cross_entropy");
        let params = ReduceParams::cross_entropy(n, classes);
        let bindings = ReduceBindings {
            in0: Some(logits),
            ints: Some(labels),
            out: Some(&probs),
            out2: Some(&rows),
            ..Default::default()
        }
        .slots();
        self.gpu.dispatch(Kernel::CrossEntropyRows, "cross_entropy", &params, &bindings, grid(n, WIDTH));
        let bindings = ReduceBindings { in0: Some(&rows), out: Some(&loss), ..Default::default() }.slots();
        self.gpu.dispatch(Kernel::Mean, "cross_entropy mean", &params, &bindings, [1, 1, 1]);
        (loss, probs)
    }

    /// Records [`kiln_tensor::Backend::cross_entropy_backward`].
    pub(crate) fn record_cross_entropy_backward(
        &self,
        probs: &StorageRef,
        labels: &StorageRef,
        grad: &StorageRef,
        n: usize,
        classes: usize,
    ) -> StorageRef {
        let out = self.f32s(n * classes, "cross_entropy backward");
        let params = ReduceParams::cross_entropy(n, classes);
        let bindings = ReduceBindings {
            in0: Some(probs),
            in1: Some(grad),
            ints: Some(labels),
            out: Some(&out),
            ..Default::default()
        }
        .slots();
        let groups = grid(n * classes, WIDTH);
        self.gpu.dispatch(Kernel::CrossEntropyBackward, "cross_entropy backward", &params, &bindings, groups);
        out
    }
}
