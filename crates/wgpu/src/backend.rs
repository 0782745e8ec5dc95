//! `WgpuBackend`: Kiln's `Backend` trait on the GPU. Each method records one or two
//! kernel dispatches on pooled buffers; nothing waits for the GPU except reads back to
//! the host and `synchronize`, which also report any GPU error.

use kiln_tensor::{
    Activation, AdamStep, AxisIndexing, AxisSplit, Backend, BinaryOp, ChannelStatistics, Conv2dGeometry,
    DType, DropoutMask, EpilogueDropout, MatmulBatch, MatmulDims, Pool2dGeometry, Result, RowAffine, SgdStep,
    SgdTarget, Shape, StorageRef, StridedView, UnaryOp,
};

use crate::gpu::{Gpu, WorkCounters};

/// The GPU backend. Create it with [`crate::WgpuDevice::wgpu`] or [`crate::open`].
pub struct WgpuBackend {
    pub(crate) gpu: Gpu,
}

impl std::fmt::Debug for WgpuBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WgpuBackend({})", self.name())
    }
}

/// Items per workgroup of the 1-D kernels.
pub(crate) const WIDTH: usize = 256;
impl WgpuBackend {
    /// Wraps an opened device.
    pub fn new(gpu: Gpu) -> Self {
        WgpuBackend { gpu }
    }

    /// What the adapter is.
    pub fn adapter(&self) -> &crate::AdapterSummary {
        &self.gpu.summary
    }

    /// How many buffers the pool has created so far (stable once a step has warmed it).
    pub fn buffers_created(&self) -> u64 {
        self.gpu.buffers.buffers_created()
    }

    /// Dispatches, submits and host recording time so far (see [`WorkCounters`]).
    pub fn counters(&self) -> WorkCounters {
        self.gpu.counters()
    }

    /// The GEMM tile shapes chosen so far, one `pass m×n×k → rows×cols` line per shape
    /// class (tuned here or loaded from the autotuner's cache).
    pub fn autotune_choices(&self) -> Vec<String> {
        self.gpu.tuner.choices()
    }

    /// How the autotuner times candidates: GPU timestamps where the adapter has them.
    pub fn autotune_clock(&self) -> crate::Clock {
        self.gpu.tuner.clock()
    }

    /// Starts timing every dispatch on the GPU (timestamp queries), until
    /// [`WgpuBackend::kernel_times`]; false, and nothing started, where the adapter has
    /// no timestamp queries or timing is already on.
    pub fn start_kernel_timing(&self) -> bool {
        self.gpu.open_window()
    }

    /// Waits for the dispatches recorded since [`WgpuBackend::start_kernel_timing`] and
    /// returns their GPU time and GFLOP/s per kernel family (`None` when timing was not
    /// started).
    pub fn kernel_times(&self) -> Result<Option<crate::KernelTimes>> {
        let times = self.gpu.close_window()?;
        self.gpu.synchronize()?;
        Ok(times)
    }

    /// Shape classes this device tuned itself (not found in the cache).
    pub fn shapes_tuned(&self) -> u64 {
        self.gpu.tuner.tuned()
    }

    /// A fresh f32 buffer of `len` elements, labelled with the op that fills it.
    pub(crate) fn f32s(&self, len: usize, op: &str) -> StorageRef {
        self.gpu.alloc(len, DType::F32, op)
    }

    fn to_bytes(values: impl IntoIterator<Item = [u8; 4]>) -> Vec<u8> {
        values.into_iter().flatten().collect()
    }
}

impl Backend for WgpuBackend {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn name(&self) -> String {
        let s = &self.gpu.summary;
        format!("wgpu: {} ({}, {})", s.name, s.backend, s.device_type)
    }

    fn memory_in_use(&self) -> usize {
        self.gpu.buffers.allocated_bytes() as usize
    }

    fn upload_f32(&self, data: Vec<f32>) -> StorageRef {
        self.gpu.upload(&Self::to_bytes(data.iter().map(|v| v.to_le_bytes())), data.len(), DType::F32)
    }

    fn upload_i32(&self, data: Vec<i32>) -> StorageRef {
        self.gpu.upload(&Self::to_bytes(data.iter().map(|v| v.to_le_bytes())), data.len(), DType::I32)
    }

    fn full(&self, len: usize, value: f32) -> StorageRef {
        self.record_full(len, value)
    }

    fn to_vec_f32(&self, storage: &StorageRef) -> Result<Vec<f32>> {
        let bytes = self.gpu.read(storage)?;
        Ok(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
    }

    fn to_vec_i32(&self, storage: &StorageRef) -> Result<Vec<i32>> {
        let bytes = self.gpu.read(storage)?;
        Ok(bytes.chunks_exact(4).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
    }

    fn synchronize(&self) -> Result<()> {
        self.gpu.synchronize()
    }

    fn unary(&self, op: UnaryOp, x: &StorageRef) -> StorageRef {
        self.record_unary(op, x)
    }

    fn unary_backward(&self, op: UnaryOp, x: &StorageRef, y: &StorageRef, grad: &StorageRef) -> StorageRef {
        self.record_unary_backward(op, x, y, grad)
    }

    fn binary(
        &self,
        op: BinaryOp,
        a: &StorageRef,
        a_shape: &Shape,
        b: &StorageRef,
        b_shape: &Shape,
        out_shape: &Shape,
    ) -> StorageRef {
        self.record_binary(op, a, a_shape, b, b_shape, out_shape)
    }

    fn broadcast_to(&self, x: &StorageRef, shape: &Shape, out_shape: &Shape) -> StorageRef {
        self.record_broadcast_to(x, shape, out_shape)
    }

    fn gather_axis(&self, x: &StorageRef, indices: &StorageRef, geometry: AxisIndexing) -> StorageRef {
        self.record_gather_axis(x, indices, geometry)
    }

    fn scatter_add_axis(&self, src: &StorageRef, indices: &StorageRef, geometry: AxisIndexing) -> StorageRef {
        self.record_scatter_add_axis(src, indices, geometry)
    }

    fn gather_view(&self, x: &StorageRef, view: &StridedView) -> StorageRef {
        self.record_gather_view(x, view)
    }

    fn scatter_view(&self, dst: &StorageRef, view: &StridedView, src: &StorageRef) {
        self.record_scatter_view(dst, view, src)
    }

    fn sum_axis(&self, x: &StorageRef, split: AxisSplit) -> StorageRef {
        self.record_sum_axis(x, split)
    }

    fn max_axis(&self, x: &StorageRef, split: AxisSplit) -> (StorageRef, StorageRef) {
        self.record_max_axis(x, split)
    }

    fn max_axis_backward(&self, grad: &StorageRef, argmax: &StorageRef, split: AxisSplit) -> StorageRef {
        self.record_max_axis_backward(grad, argmax, split)
    }

    fn softmax(&self, x: &StorageRef, split: AxisSplit, log: bool) -> StorageRef {
        self.record_softmax(x, split, log)
    }

    fn normalize_axis(&self, x: &StorageRef, split: AxisSplit, eps: f32) -> (StorageRef, StorageRef) {
        self.record_normalize(x, split, eps)
    }

    fn normalize_axis_backward(
        &self,
        y: &StorageRef,
        rstd: &StorageRef,
        grad: &StorageRef,
        split: AxisSplit,
    ) -> StorageRef {
        self.record_normalize_backward(y, rstd, grad, split)
    }

    fn channel_norm(
        &self,
        x: &StorageRef,
        weight: &StorageRef,
        bias: &StorageRef,
        given: Option<(&StorageRef, &StorageRef)>,
        split: AxisSplit,
        eps: f32,
    ) -> (StorageRef, StorageRef, StorageRef) {
        self.record_channel_norm(x, weight, bias, given, split, eps)
    }

    fn channel_norm_backward(
        &self,
        x: &StorageRef,
        grad: &StorageRef,
        weight: &StorageRef,
        statistics: ChannelStatistics,
        split: AxisSplit,
        batch_statistics: bool,
    ) -> (StorageRef, StorageRef, StorageRef) {
        self.record_channel_norm_backward(x, grad, weight, statistics, split, batch_statistics)
    }

    fn row_norm(
        &self,
        x: &StorageRef,
        affine: RowAffine,
        split: AxisSplit,
        eps: f32,
    ) -> (StorageRef, StorageRef) {
        self.record_row_norm(x, affine, split, eps)
    }

    fn row_norm_backward(
        &self,
        x: &StorageRef,
        grad: &StorageRef,
        weight: Option<&StorageRef>,
        stats: &StorageRef,
        split: AxisSplit,
    ) -> (StorageRef, StorageRef, StorageRef) {
        self.record_row_norm_backward(x, grad, weight, stats, split)
    }

    fn softmax_backward(&self, y: &StorageRef, grad: &StorageRef, split: AxisSplit, log: bool) -> StorageRef {
        self.record_softmax_backward(y, grad, split, log)
    }

    fn cross_entropy(
        &self,
        logits: &StorageRef,
        labels: &StorageRef,
        n: usize,
        classes: usize,
    ) -> (StorageRef, StorageRef) {
        self.record_cross_entropy(logits, labels, n, classes)
    }

    fn cross_entropy_backward(
        &self,
        probs: &StorageRef,
        labels: &StorageRef,
        grad: &StorageRef,
        n: usize,
        classes: usize,
    ) -> StorageRef {
        self.record_cross_entropy_backward(probs, labels, grad, n, classes)
    }

    fn matmul(&self, a: &StorageRef, b: &StorageRef, d: MatmulDims) -> StorageRef {
        self.record_matmul(a, b, d)
    }

    fn batched_matmul(
        &self,
        a: &StorageRef,
        b: &StorageRef,
        dims: MatmulDims,
        batch: MatmulBatch,
    ) -> StorageRef {
        self.record_batched_matmul(a, b, dims, batch)
    }

    fn linear(
        &self,
        x: &StorageRef,
        weight: &StorageRef,
        bias: Option<&StorageRef>,
        dims: MatmulDims,
        activation: Activation,
        dropout: Option<EpilogueDropout>,
    ) -> StorageRef {
        self.record_linear(x, weight, bias, dims, activation, dropout)
    }

    fn conv2d(
        &self,
        x: &StorageRef,
        weight: &StorageRef,
        bias: Option<&StorageRef>,
        g: &Conv2dGeometry,
        activation: Activation,
    ) -> StorageRef {
        self.record_conv2d(x, weight, bias, g, activation)
    }

    fn conv2d_backward_input(
        &self,
        grad: &StorageRef,
        weight: &StorageRef,
        g: &Conv2dGeometry,
    ) -> StorageRef {
        self.record_conv2d_backward_input(grad, weight, g)
    }

    fn conv2d_backward_weight(
        &self,
        x: &StorageRef,
        grad: &StorageRef,
        g: &Conv2dGeometry,
        with_bias: bool,
    ) -> (StorageRef, Option<StorageRef>) {
        self.record_conv2d_backward_weight(x, grad, g, with_bias)
    }

    fn max_pool2d(&self, x: &StorageRef, g: &Pool2dGeometry) -> (StorageRef, StorageRef) {
        self.record_max_pool2d(x, g)
    }

    fn max_pool2d_backward(&self, grad: &StorageRef, argmax: &StorageRef, g: &Pool2dGeometry) -> StorageRef {
        self.record_max_pool2d_backward(grad, argmax, g)
    }

    fn dropout(&self, x: &StorageRef, p: f32, mask: DropoutMask) -> StorageRef {
        self.record_dropout(x, p, mask)
    }

    fn sgd_update(&self, param: &StorageRef, grad: &StorageRef, velocity: Option<&StorageRef>, s: SgdStep) {
        self.record_sgd_update(param, grad, velocity, s)
    }

    fn sgd_update_all(&self, targets: &[SgdTarget<'_>], s: SgdStep) {
        self.record_sgd_update_all(targets, s)
    }

    fn adam_update(
        &self,
        param: &StorageRef,
        grad: &StorageRef,
        m: &StorageRef,
        v: &StorageRef,
        s: AdamStep,
    ) {
        self.record_adam_update(param, grad, m, v, s)
    }

    fn copy_into(&self, dst: &StorageRef, src: &StorageRef) {
        self.gpu.copy(src, dst, (src.len() * 4) as u64);
    }
}
