//! `WgpuBackend`: Kiln's `Backend` trait on the GPU. Each method records one or two
//! kernel dispatches on pooled buffers; nothing waits for the GPU except reads back to
//! the host and `synchronize`, which also report any GPU error.

use kiln_tensor::{
    Activation, AdamStep, AxisSplit, Backend, BinaryOp, Conv2dGeometry, DType, DropoutMask, MatmulDims,
    Pool2dGeometry, Result, SgdStep, SgdTarget, Shape, StorageRef, UnaryOp,
};

use crate::gpu::{Gpu, WorkCounters, grid};
use crate::kernels::Kernel;
use crate::op_codes::{BinaryCode, UnaryCode};
use crate::params::{
    ConvParams, DropoutParams, ElementwiseParams, MatmulParams, OptimParams, PoolParams, ReduceParams,
    SgdPairParams,
};

/// The GPU backend. Create it with [`crate::WgpuDevice::wgpu`] or [`crate::open`].
pub struct WgpuBackend {
    gpu: Gpu,
}

impl std::fmt::Debug for WgpuBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WgpuBackend({})", self.name())
    }
}

/// Items per workgroup of the 1-D kernels.
const WIDTH: usize = 256;
/// Workgroups for a tiled GEMM producing `m × n` with tiles of `tile_rows × 64`:
/// column tiles along x (spilling into z), row tiles along y.
fn gemm_grid(m: usize, n: usize, tile_rows: usize) -> [u32; 3] {
    let column_tiles = n.div_ceil(64).max(1);
    let x = column_tiles.min(32_768);
    [x as u32, m.div_ceil(tile_rows).max(1) as u32, column_tiles.div_ceil(x) as u32]
}

/// Products with at most this many rows use 16-row tiles instead of 64-row ones.
const NARROW_ROWS: usize = 32;

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

    /// `op(A)·op(B)`, plus `bias[n]` on every row when given, through `activation`, in
    /// one dispatch.
    fn matmul_then(
        &self,
        a: &StorageRef,
        b: &StorageRef,
        bias: Option<&StorageRef>,
        d: MatmulDims,
        activation: Activation,
        op: &str,
    ) -> StorageRef {
        let out = self.f32s(d.m * d.n, op);
        let params = MatmulParams::new(d, bias.is_some(), activation);
        let (kernel, tile_rows) =
            if d.m <= NARROW_ROWS { (Kernel::MatmulNarrow, 16) } else { (Kernel::Matmul, 64) };
        let bindings = [Some(a), Some(b), bias, Some(&out)];
        self.gpu.dispatch(kernel, op, &params, &bindings, gemm_grid(d.m, d.n, tile_rows));
        out
    }

    fn f32s(&self, len: usize, op: &str) -> StorageRef {
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
        let out = self.f32s(len, "full");
        let params = ElementwiseParams::fill(len, value);
        self.gpu.dispatch(Kernel::Fill, "full", &params, &[None, None, None, Some(&out)], grid(len, WIDTH));
        out
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

    fn unary_backward(&self, op: UnaryOp, x: &StorageRef, y: &StorageRef, grad: &StorageRef) -> StorageRef {
        let n = x.len();
        let out = self.f32s(n, "unary backward");
        let (code, [scalar, bound]) = UnaryCode::of(op);
        let params = ElementwiseParams::unary(n, code as u32, scalar, bound);
        let bindings = [Some(x), Some(y), Some(grad), Some(&out)];
        self.gpu.dispatch(Kernel::UnaryBackward, "unary backward", &params, &bindings, grid(n, WIDTH));
        out
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

    fn broadcast_to(&self, x: &StorageRef, shape: &Shape, out_shape: &Shape) -> StorageRef {
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

    fn sum_axis(&self, x: &StorageRef, split: AxisSplit) -> StorageRef {
        let lanes = split.outer * split.inner;
        let out = self.f32s(lanes, "sum");
        let bindings = [Some(x), None, None, Some(&out), None, None];
        self.gpu.dispatch(
            Kernel::SumAxis,
            "sum",
            &ReduceParams::along(split, false),
            &bindings,
            grid(lanes, 1),
        );
        out
    }

    fn max_axis(&self, x: &StorageRef, split: AxisSplit) -> (StorageRef, StorageRef) {
        let lanes = split.outer * split.inner;
        let values = self.f32s(lanes, "max");
        let argmax = self.gpu.alloc(lanes, DType::I32, "max");
        let bindings = [Some(x), None, None, Some(&values), None, Some(&argmax)];
        self.gpu.dispatch(
            Kernel::MaxAxis,
            "max",
            &ReduceParams::along(split, false),
            &bindings,
            grid(lanes, WIDTH),
        );
        (values, argmax)
    }

    fn max_axis_backward(&self, grad: &StorageRef, argmax: &StorageRef, split: AxisSplit) -> StorageRef {
        let n = split.outer * split.len * split.inner;
        let out = self.f32s(n, "max backward");
        let bindings = [Some(grad), None, Some(argmax), Some(&out), None, None];
        self.gpu.dispatch(
            Kernel::MaxAxisBackward,
            "max backward",
            &ReduceParams::along(split, false),
            &bindings,
            grid(n, WIDTH),
        );
        out
    }

    fn softmax(&self, x: &StorageRef, split: AxisSplit, log: bool) -> StorageRef {
        let out = self.f32s(x.len(), "softmax");
        let bindings = [Some(x), None, None, Some(&out), None, None];
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

    fn softmax_backward(&self, y: &StorageRef, grad: &StorageRef, split: AxisSplit, log: bool) -> StorageRef {
        let out = self.f32s(y.len(), "softmax backward");
        let bindings = [Some(y), Some(grad), None, Some(&out), None, None];
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

    fn cross_entropy(
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
        let bindings = [Some(logits), None, Some(labels), Some(&probs), Some(&rows), None];
        self.gpu.dispatch(Kernel::CrossEntropyRows, "cross_entropy", &params, &bindings, grid(n, WIDTH));
        let bindings = [Some(&rows), None, None, Some(&loss), None, None];
        self.gpu.dispatch(Kernel::Mean, "cross_entropy mean", &params, &bindings, [1, 1, 1]);
        (loss, probs)
    }

    fn cross_entropy_backward(
        &self,
        probs: &StorageRef,
        labels: &StorageRef,
        grad: &StorageRef,
        n: usize,
        classes: usize,
    ) -> StorageRef {
        let out = self.f32s(n * classes, "cross_entropy backward");
        let params = ReduceParams::cross_entropy(n, classes);
        let bindings = [Some(probs), Some(grad), Some(labels), Some(&out), None, None];
        let groups = grid(n * classes, WIDTH);
        self.gpu.dispatch(Kernel::CrossEntropyBackward, "cross_entropy backward", &params, &bindings, groups);
        out
    }

    fn matmul(&self, a: &StorageRef, b: &StorageRef, d: MatmulDims) -> StorageRef {
        self.matmul_then(a, b, None, d, Activation::Identity, "matmul")
    }

    fn linear(
        &self,
        x: &StorageRef,
        weight: &StorageRef,
        bias: Option<&StorageRef>,
        dims: MatmulDims,
        activation: Activation,
    ) -> StorageRef {
        self.matmul_then(x, weight, bias, dims, activation, "linear")
    }

    fn conv2d(
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
        let bindings = [Some(x), Some(weight), bias, Some(&out)];
        self.gpu.dispatch(Kernel::ConvForward, "conv2d", &params, &bindings, gemm_grid(m, n, 64));
        out
    }

    fn conv2d_backward_input(
        &self,
        grad: &StorageRef,
        weight: &StorageRef,
        g: &Conv2dGeometry,
    ) -> StorageRef {
        let (m, n, k) = (g.in_channels, g.batch * g.in_h * g.in_w, g.out_channels * g.kernel_h * g.kernel_w);
        let out = self.f32s(m * n, "conv2d input gradient");
        let params = ConvParams::new(g, [m, n, k], false, Activation::Identity);
        let bindings = [Some(grad), Some(weight), Some(&out)];
        self.gpu.dispatch(
            Kernel::ConvInputGrad,
            "conv2d input gradient",
            &params,
            &bindings,
            gemm_grid(m, n, 64),
        );
        out
    }

    fn conv2d_backward_weight(
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
        let bindings = [Some(grad), Some(x), Some(&dw)];
        self.gpu.dispatch(
            Kernel::ConvWeightGrad,
            "conv2d weight gradient",
            &params,
            &bindings,
            gemm_grid(m, n, 64),
        );
        let db = with_bias.then(|| {
            let db = self.f32s(g.out_channels, "conv2d bias gradient");
            let split = AxisSplit { outer: g.batch, len: g.out_channels, inner: plane };
            let bindings = [Some(grad), None, None, Some(&db), None, None];
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

    fn max_pool2d(&self, x: &StorageRef, g: &Pool2dGeometry) -> (StorageRef, StorageRef) {
        let n = g.batch * g.channels * g.out_h() * g.out_w();
        let values = self.f32s(n, "max_pool2d");
        let argmax = self.gpu.alloc(n, DType::I32, "max_pool2d");
        let bindings = [Some(x), None, Some(&values), Some(&argmax)];
        self.gpu.dispatch(Kernel::PoolForward, "max_pool2d", &PoolParams::new(g), &bindings, grid(n, WIDTH));
        (values, argmax)
    }

    fn max_pool2d_backward(&self, grad: &StorageRef, argmax: &StorageRef, g: &Pool2dGeometry) -> StorageRef {
        let n = g.batch * g.channels * g.in_h * g.in_w;
        let out = self.f32s(n, "max_pool2d backward");
        let bindings = [Some(grad), Some(argmax), Some(&out), None];
        self.gpu.dispatch(
            Kernel::PoolBackward,
            "max_pool2d backward",
            &PoolParams::new(g),
            &bindings,
            grid(n, WIDTH),
        );
        out
    }

    fn dropout(&self, x: &StorageRef, p: f32, mask: DropoutMask) -> StorageRef {
        let n = x.len();
        let out = self.f32s(n, "dropout");
        let params = DropoutParams {
            n: n as u32,
            seed_lo: mask.seed as u32,
            seed_hi: (mask.seed >> 32) as u32,
            first_index: mask.first_index,
            threshold: p * (1u32 << 24) as f32,
            scale: 1.0 / (1.0 - p),
        };
        self.gpu.dispatch(Kernel::Dropout, "dropout", &params, &[Some(x), Some(&out)], grid(n, WIDTH));
        out
    }

    fn sgd_update(&self, param: &StorageRef, grad: &StorageRef, velocity: Option<&StorageRef>, s: SgdStep) {
        let n = param.len();
        let params = OptimParams {
            n: n as u32,
            use_velocity: u32::from(velocity.is_some()),
            nesterov: u32::from(s.nesterov),
            lr: s.lr,
            momentum: s.momentum,
            weight_decay: s.weight_decay,
            ..Default::default()
        };
        let bindings = [Some(grad), Some(param), velocity, None];
        self.gpu.dispatch(Kernel::Sgd, "sgd", &params, &bindings, grid(n, WIDTH));
    }

    fn sgd_update_all(&self, targets: &[SgdTarget<'_>], s: SgdStep) {
        for pair in targets.chunks(2) {
            let [first, second] = pair else {
                let t = &pair[0];
                self.sgd_update(t.param, t.grad, t.velocity, s);
                continue;
            };
            debug_assert_eq!(first.velocity.is_some(), second.velocity.is_some(), "one SGD step, one config");
            let (n0, n1) = (first.param.len(), second.param.len());
            let params = SgdPairParams {
                n0: n0 as u32,
                n1: n1 as u32,
                use_velocity: u32::from(first.velocity.is_some()),
                nesterov: u32::from(s.nesterov),
                lr: s.lr,
                momentum: s.momentum,
                weight_decay: s.weight_decay,
            };
            let bindings = [
                Some(first.grad),
                Some(first.param),
                first.velocity,
                Some(second.grad),
                Some(second.param),
                second.velocity,
            ];
            self.gpu.dispatch(Kernel::SgdPair, "sgd", &params, &bindings, grid(n0 + n1, WIDTH));
        }
    }

    fn adam_update(
        &self,
        param: &StorageRef,
        grad: &StorageRef,
        m: &StorageRef,
        v: &StorageRef,
        s: AdamStep,
    ) {
        let n = param.len();
        let bias1 = 1.0 - s.beta1.powi(s.step as i32);
        let bias2 = 1.0 - s.beta2.powi(s.step as i32);
        let params = OptimParams {
            n: n as u32,
            decoupled: u32::from(s.decoupled),
            lr: s.lr,
            weight_decay: s.weight_decay,
            beta1: s.beta1,
            beta2: s.beta2,
            eps: s.eps,
            bias1,
            bias2,
            ..Default::default()
        };
        self.gpu.dispatch(
            Kernel::Adam,
            "adam",
            &params,
            &[Some(grad), Some(param), Some(m), Some(v)],
            grid(n, WIDTH),
        );
    }

    fn copy_into(&self, dst: &StorageRef, src: &StorageRef) {
        self.gpu.copy(src, dst, (src.len() * 4) as u64);
    }
}
