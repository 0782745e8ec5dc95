//! The kernels' parameter blocks: one `#[repr(C)]` struct per WGSL `Params` struct,
//! field for field in the same order, uploaded as its bytes (bytemuck). A field added
//! to one side only shifts every later field, which the CPU-parity tests catch.

use bytemuck::{Pod, Zeroable};
use kiln_tensor::{
    Activation, AxisIndexing, AxisSplit, Conv2dGeometry, EpilogueDropout, MatmulDims, Pool2dGeometry, Shape,
    StridedView,
};

/// Largest rank the broadcasting kernel takes.
pub const MAX_RANK: usize = 8;

/// `Params` of `elementwise.wgsl`: fill, unary ops and their gradients, broadcasting
/// binary ops.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct ElementwiseParams {
    pub n: u32,
    /// The unary or binary op code.
    pub op: u32,
    /// Dimensions of a broadcasting binary op's output (0 otherwise).
    pub rank: u32,
    /// The operand of unary ops that take one (power, scalar factor or addend, clamp's
    /// lower bound) and the value of a fill.
    pub scalar: f32,
    /// Clamp's upper bound.
    pub bound: f32,
    /// A strided view's first storage element.
    pub offset: u32,
    /// WGSL aligns the arrays below to 16 bytes.
    pub _align: [u32; 2],
    pub out_dims: [u32; MAX_RANK],
    pub a_strides: [u32; MAX_RANK],
    pub b_strides: [u32; MAX_RANK],
}

impl ElementwiseParams {
    /// A fill of `n` elements with `value`.
    pub fn fill(n: usize, value: f32) -> Self {
        ElementwiseParams { n: n as u32, scalar: value, ..Default::default() }
    }

    /// Unary op `op` (its code) on `n` elements.
    pub fn unary(n: usize, op: u32, scalar: f32, bound: f32) -> Self {
        ElementwiseParams { n: n as u32, op, scalar, bound, ..Default::default() }
    }

    /// A copy through `view`: its dimensions in `out_dims`, its strides in `a_strides`.
    pub fn view(view: &StridedView) -> Self {
        assert!(
            view.dims.len() <= MAX_RANK,
            "the wgpu backend copies views of up to {MAX_RANK} dimensions, got {:?}",
            view.dims
        );
        ElementwiseParams {
            n: view.numel() as u32,
            rank: view.dims.len() as u32,
            offset: view.offset as u32,
            out_dims: padded(&view.dims),
            a_strides: padded(&view.strides),
            ..Default::default()
        }
    }

    /// A binary op broadcasting `a` and `b` to `out`.
    pub fn broadcast(op: u32, a: &Shape, b: &Shape, out: &Shape) -> Self {
        assert!(out.rank() <= MAX_RANK, "the wgpu backend broadcasts up to {MAX_RANK} dimensions, got {out}");
        ElementwiseParams {
            n: out.numel() as u32,
            op,
            rank: out.rank() as u32,
            out_dims: padded(out.dims()),
            a_strides: padded(&a.broadcast_strides(out)),
            b_strides: padded(&b.broadcast_strides(out)),
            ..Default::default()
        }
    }
}

/// `values` as the kernel's fixed-size array of dimensions or strides, zero-padded.
fn padded(values: &[usize]) -> [u32; MAX_RANK] {
    let mut words = [0u32; MAX_RANK];
    words.iter_mut().zip(values).for_each(|(w, &x)| *w = x as u32);
    words
}

/// A dropout mask as `dropout_mask.wgsl` reads it: the last five fields of
/// `dropout.wgsl`'s and `matmul.wgsl`'s `Params`, written there inline (a nested
/// struct in a WGSL uniform block would be padded to 16 bytes; this one is five
/// 4-byte fields, so `repr(C)` lays it out exactly as the inline fields).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct MaskParams {
    pub seed_lo: u32,
    pub seed_hi: u32,
    /// Index in the mask stream of the tensor's first element.
    pub first_index: u32,
    /// The drop probability as a fraction of 2^24 (the hash's range).
    pub threshold: f32,
    /// `1/(1−p)` for kept elements.
    pub scale: f32,
}

impl MaskParams {
    /// The mask of `dropout`.
    pub fn new(dropout: EpilogueDropout) -> Self {
        let EpilogueDropout { p, mask } = dropout;
        MaskParams {
            seed_lo: mask.seed as u32,
            seed_hi: (mask.seed >> 32) as u32,
            first_index: mask.first_index,
            threshold: p * (1u32 << 24) as f32,
            scale: dropout.scale(),
        }
    }
}

/// `Params` of `dropout.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct DropoutParams {
    pub n: u32,
    pub mask: MaskParams,
}

/// `Params` of `reduce.wgsl`: reductions and softmax along an axis, cross-entropy rows.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct ReduceParams {
    pub outer: u32,
    pub len: u32,
    pub inner: u32,
    /// 1 for log-softmax.
    pub log: u32,
    /// Cross-entropy: rows and classes.
    pub rows: u32,
    pub classes: u32,
    /// Normalization: added to the variance.
    pub eps: f32,
    /// WGSL rounds the uniform block to 16 bytes.
    pub _pad: u32,
}

impl ReduceParams {
    /// A reduction or softmax along the axis `split` describes.
    pub fn along(split: AxisSplit, log: bool) -> Self {
        ReduceParams {
            outer: split.outer as u32,
            len: split.len as u32,
            inner: split.inner as u32,
            log: u32::from(log),
            ..Default::default()
        }
    }

    /// Normalization along the axis `split` describes.
    pub fn normalize(split: AxisSplit, eps: f32) -> Self {
        ReduceParams { eps, ..ReduceParams::along(split, false) }
    }

    /// Cross-entropy of `rows` rows of `classes` logits.
    pub fn cross_entropy(rows: usize, classes: usize) -> Self {
        ReduceParams { rows: rows as u32, classes: classes as u32, ..Default::default() }
    }
}

/// `Params` of `channel_norm.wgsl`: batch normalization of `[outer, channels, inner]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct ChannelNormParams {
    pub outer: u32,
    pub channels: u32,
    pub inner: u32,
    /// 1: the batch's statistics; 0: given ones.
    pub batch_statistics: u32,
    pub eps: f32,
    /// WGSL rounds the uniform block to 16 bytes.
    pub _pad: [u32; 3],
}

impl ChannelNormParams {
    /// Normalization of the channels `split.len` of `split`.
    pub fn new(split: AxisSplit, batch_statistics: bool, eps: f32) -> Self {
        ChannelNormParams {
            outer: split.outer as u32,
            channels: split.len as u32,
            inner: split.inner as u32,
            batch_statistics: u32::from(batch_statistics),
            eps,
            _pad: [0; 3],
        }
    }
}

/// `Params` of `row_norm.wgsl`: layer normalization of `[rows, features]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct RowNormParams {
    pub rows: u32,
    pub features: u32,
    /// 1 where the weight is bound.
    pub has_weight: u32,
    /// 1 where the bias is bound.
    pub has_bias: u32,
    pub eps: f32,
    /// WGSL rounds the uniform block to 16 bytes.
    pub _pad: [u32; 3],
}

impl RowNormParams {
    /// The rows `split.outer` of `split.len` features.
    pub fn new(split: AxisSplit, has_weight: bool, has_bias: bool, eps: f32) -> Self {
        RowNormParams {
            rows: split.outer as u32,
            features: split.len as u32,
            has_weight: u32::from(has_weight),
            has_bias: u32::from(has_bias),
            eps,
            _pad: [0; 3],
        }
    }
}

/// `Params` of `index_axis.wgsl` (picking along an axis by indices).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct AxisIndexParams {
    pub outer: u32,
    pub len: u32,
    pub inner: u32,
    pub count: u32,
    pub outer_stride: u32,
    pub count_stride: u32,
    pub inner_stride: u32,
    pub _pad: u32,
}

impl AxisIndexParams {
    pub fn new(g: AxisIndexing) -> Self {
        AxisIndexParams {
            outer: g.split.outer as u32,
            len: g.split.len as u32,
            inner: g.split.inner as u32,
            count: g.count as u32,
            outer_stride: g.outer_stride as u32,
            count_stride: g.count_stride as u32,
            inner_stride: g.inner_stride as u32,
            _pad: 0,
        }
    }
}

/// `Params` of `pool.wgsl` (max-pooling).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct PoolParams {
    /// Batch × channels.
    pub planes: u32,
    pub in_h: u32,
    pub in_w: u32,
    pub out_h: u32,
    pub out_w: u32,
    pub kernel: u32,
    pub stride: u32,
    pub padding: u32,
}

impl PoolParams {
    pub fn new(g: &Pool2dGeometry) -> Self {
        PoolParams {
            planes: (g.batch * g.channels) as u32,
            in_h: g.in_h as u32,
            in_w: g.in_w as u32,
            out_h: g.out_h() as u32,
            out_w: g.out_w() as u32,
            kernel: g.kernel as u32,
            stride: g.stride as u32,
            padding: g.padding as u32,
        }
    }
}

/// `Params` of `matmul.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct MatmulParams {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub trans_a: u32,
    pub trans_b: u32,
    /// 1: add `bias[n]` to every row.
    pub has_bias: u32,
    /// 1: ReLU in the store.
    pub relu: u32,
    /// 1: dropout after the ReLU, with the mask below.
    pub dropout: u32,
    pub mask: MaskParams,
    /// Where the first product's operands and result start.
    pub a_offset: u32,
    pub b_offset: u32,
    pub c_offset: u32,
    /// Products of one dispatch, stacked along the grid's z (1 unless batched).
    pub products: u32,
    /// How far apart consecutive products' operands and results lie.
    pub a_stride: u32,
    pub b_stride: u32,
    pub c_stride: u32,
}

impl MatmulParams {
    /// A product of `d`, with `bias`, `activation` and `dropout` in its store.
    pub fn new(
        d: MatmulDims,
        has_bias: bool,
        activation: Activation,
        dropout: Option<EpilogueDropout>,
    ) -> Self {
        MatmulParams {
            m: d.m as u32,
            n: d.n as u32,
            k: d.k as u32,
            trans_a: u32::from(d.trans_a),
            trans_b: u32::from(d.trans_b),
            has_bias: u32::from(has_bias),
            relu: u32::from(activation == Activation::Relu),
            dropout: u32::from(dropout.is_some()),
            mask: dropout.map_or_else(MaskParams::zeroed, MaskParams::new),
            a_offset: 0,
            b_offset: 0,
            c_offset: 0,
            products: 1,
            a_stride: 0,
            b_stride: 0,
            c_stride: 0,
        }
    }
}

/// `Params` of `conv_common.wgsl` (the three convolution passes as implicit GEMMs).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct ConvParams {
    /// The implicit GEMM's rows, columns and depth.
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub batch: u32,
    pub channels: u32,
    pub in_h: u32,
    pub in_w: u32,
    pub out_channels: u32,
    pub kernel_h: u32,
    pub kernel_w: u32,
    pub stride_h: u32,
    pub stride_w: u32,
    pub pad_h: u32,
    pub pad_w: u32,
    pub out_h: u32,
    pub out_w: u32,
    pub has_bias: u32,
    /// 1: ReLU in the forward kernel's store.
    pub relu: u32,
}

impl ConvParams {
    /// The pass over `g` whose implicit GEMM is `m × n` with depth `k`.
    pub fn new(g: &Conv2dGeometry, [m, n, k]: [usize; 3], has_bias: bool, activation: Activation) -> Self {
        let u = |v: usize| v as u32;
        ConvParams {
            m: u(m),
            n: u(n),
            k: u(k),
            batch: u(g.batch),
            channels: u(g.in_channels),
            in_h: u(g.in_h),
            in_w: u(g.in_w),
            out_channels: u(g.out_channels),
            kernel_h: u(g.kernel_h),
            kernel_w: u(g.kernel_w),
            stride_h: u(g.stride.0),
            stride_w: u(g.stride.1),
            pad_h: u(g.padding.0),
            pad_w: u(g.padding.1),
            out_h: u(g.out_h()),
            out_w: u(g.out_w()),
            has_bias: u32::from(has_bias),
            relu: u32::from(activation == Activation::Relu),
        }
    }
}

/// `Params` of `optim.wgsl`: SGD (momentum, Nesterov) and Adam on one tensor.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct OptimParams {
    pub n: u32,
    pub use_velocity: u32,
    pub nesterov: u32,
    /// Adam: 1 for decoupled weight decay (AdamW).
    pub decoupled: u32,
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// Adam's bias corrections `1 − β^t`.
    pub bias1: f32,
    pub bias2: f32,
}

/// `Params` of the generated SGD group kernel (`sgd_group.rs`): a group of tensors in
/// one dispatch.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct SgdGroupParams {
    pub use_velocity: u32,
    pub nesterov: u32,
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
    /// Tensors in this dispatch (the kernel may be compiled for more).
    pub tensors: u32,
    pub pad: [u32; 2],
    /// Where each tensor's workgroups end (each tensor has its elements rounded up to
    /// whole workgroups).
    pub ends: [u32; crate::sgd_group::MAX_GROUP as usize],
    /// Each tensor's elements.
    pub lens: [u32; crate::sgd_group::MAX_GROUP as usize],
}

/// `Params` of `fma_peak.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct FmaPeakParams {
    /// Loop iterations of every invocation (64 floating-point operations each).
    pub iterations: u32,
}
