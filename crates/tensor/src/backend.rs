//! The `Backend` trait: the coarse kernels every device (CPU, wgpu) implements, and the
//! plain descriptions of geometry those kernels take. Kernels work on raw storage and
//! element counts; shapes, broadcasting rules and gradients live in `Tensor` and `ops`.

use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;

use crate::{AxisSplit, DType, DropoutMask, Result, Shape, UnaryOp};

/// Memory owned by one backend. Backends downcast through [`Storage::as_any`] to their
/// own type; storage from another backend is a bug and panics.
pub trait Storage: Any + Send + Sync + Debug {
    /// For downcasting to the backend's concrete type.
    fn as_any(&self) -> &dyn Any;
    /// Number of elements.
    fn len(&self) -> usize;
    /// Whether the storage holds no elements.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Element type.
    fn dtype(&self) -> DType;
}

/// Shared handle to a backend's storage; tensors clone it cheaply.
pub type StorageRef = Arc<dyn Storage>;

/// One tensor of an SGD step: the parameter, its gradient, and its momentum buffer when
/// momentum is used.
#[derive(Clone, Copy, Debug)]
pub struct SgdTarget<'a> {
    /// Updated in place.
    pub param: &'a StorageRef,
    /// The parameter's gradient.
    pub grad: &'a StorageRef,
    /// The momentum buffer, updated in place.
    pub velocity: Option<&'a StorageRef>,
}

/// A function applied to a kernel's output as it is stored (the kernel's epilogue), so
/// that e.g. a convolution and the ReLU after it cost one pass over memory, not two.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Activation {
    /// The output as computed.
    #[default]
    Identity,
    /// `max(v, 0)`.
    Relu,
}

impl Activation {
    /// The activation of one value (for backends that apply it element by element).
    pub fn apply(self, v: f32) -> f32 {
        match self {
            Activation::Identity => v,
            Activation::Relu => v.max(0.0),
        }
    }
}

/// Inverted dropout applied in a kernel's epilogue, after its activation: element `i`
/// of the output is kept and scaled by `1/(1−p)` when [`DropoutMask::keeps`]`(i, p)`,
/// else zeroed — the same values as [`Backend::dropout`] on the unfused output.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpilogueDropout {
    /// Drop probability in `(0, 1)`.
    pub p: f32,
    /// The mask window.
    pub mask: DropoutMask,
}

impl EpilogueDropout {
    /// The factor kept elements are multiplied by: `1/(1−p)`.
    pub fn scale(self) -> f32 {
        1.0 / (1.0 - self.p)
    }

    /// Output element `i` with value `v` after dropout (for backends that apply it
    /// element by element).
    pub fn apply(self, i: u32, v: f32) -> f32 {
        if self.mask.keeps(i, self.p) { v * self.scale() } else { 0.0 }
    }
}

/// A strided window onto a tensor's storage: element `[c₀, c₁, …]` of the window (of
/// `dims`, row-major) is storage element `offset + Σ cₖ·strides[k]`. Permutations,
/// slices and the slots of a concatenation are such windows; [`Backend::gather_view`]
/// and [`Backend::scatter_view`] copy through them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StridedView {
    /// The window's dimensions.
    pub dims: Vec<usize>,
    /// Storage elements between neighbours along each dimension.
    pub strides: Vec<usize>,
    /// Storage element of the window's first element.
    pub offset: usize,
}

impl StridedView {
    /// Number of elements in the window.
    pub fn numel(&self) -> usize {
        self.dims.iter().product()
    }
}

/// Picking positions along one axis by an i32 index tensor (`index_select`, `gather`)
/// and its adjoint (`scatter_add`). The indexed tensor is `[outer, len, inner]` around
/// the axis; the result of a pick is `[outer, count, inner]`, its element `(o, j, i)`
/// taken from position `index[o·outer_stride + j·count_stride + i·inner_stride]` of
/// the axis. An index outside `0..len` picks NaN and scatters nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AxisIndexing {
    /// The indexed tensor around the axis.
    pub split: AxisSplit,
    /// Positions picked per `(outer, inner)` pair.
    pub count: usize,
    /// Index elements between consecutive `o` (0: one index list for all).
    pub outer_stride: usize,
    /// Index elements between consecutive `j`.
    pub count_stride: usize,
    /// Index elements between consecutive `i` (0: one index list for all).
    pub inner_stride: usize,
}

/// Elementwise functions of two inputs (broadcast to a common shape).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    /// `a + b`
    Add,
    /// `a - b`
    Sub,
    /// `a * b`
    Mul,
    /// `a / b`
    Div,
    /// `max(a, b)` (NaN if either is)
    Maximum,
    /// `min(a, b)` (NaN if either is)
    Minimum,
    /// `a` where `b ≠ 0`, else 0 (exactly: an infinite or NaN `a` where `b = 0` gives 0)
    KeepWhere,
    /// 1 where `a > b`, else 0
    Greater,
    /// 1 where `a ≥ b`, else 0
    GreaterEqual,
    /// 1 where `a = b`, else 0
    Equal,
    /// `max(a + b, 0)`: a residual connection and the ReLU after it in one pass
    AddRelu,
}

impl BinaryOp {
    /// `a op b` for one pair of values: the definition every backend follows.
    #[inline(always)]
    pub fn apply(self, a: f32, b: f32) -> f32 {
        let indicator = |condition: bool| if condition { 1.0 } else { 0.0 };
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            BinaryOp::Maximum if a.is_nan() || b.is_nan() => f32::NAN,
            BinaryOp::Maximum => a.max(b),
            BinaryOp::Minimum if a.is_nan() || b.is_nan() => f32::NAN,
            BinaryOp::Minimum => a.min(b),
            BinaryOp::KeepWhere => {
                if b != 0.0 {
                    a
                } else {
                    0.0
                }
            }
            BinaryOp::Greater => indicator(a > b),
            BinaryOp::GreaterEqual => indicator(a >= b),
            BinaryOp::Equal => indicator(a == b),
            BinaryOp::AddRelu => (a + b).max(0.0),
        }
    }
}

/// Geometry of a 2-D matrix product `C[m,n] = op(A) · op(B)`, where `op` transposes
/// when the flag is set: `A` is stored `[m,k]` (or `[k,m]` when `trans_a`), `B` is
/// stored `[k,n]` (or `[n,k]` when `trans_b`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulDims {
    /// Rows of the result.
    pub m: usize,
    /// The contracted dimension.
    pub k: usize,
    /// Columns of the result.
    pub n: usize,
    /// `A` is stored transposed.
    pub trans_a: bool,
    /// `B` is stored transposed.
    pub trans_b: bool,
}

/// The batch of a batched matrix product: `count` products, the operands' matrices
/// `a_stride` and `b_stride` elements apart (0 repeats one matrix for every product,
/// a broadcast), the results `m·n` apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulBatch {
    /// Number of products.
    pub count: usize,
    /// Elements between consecutive left operands.
    pub a_stride: usize,
    /// Elements between consecutive right operands.
    pub b_stride: usize,
}

/// Sizes of a batch of scaled dot-product attentions: for each of `batch` items,
/// queries `[queries, depth]`, keys `[keys, depth]` and values `[keys, value_depth]`,
/// each operand contiguous item after item.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionDims {
    /// Independent attentions (batch × heads).
    pub batch: usize,
    /// Query positions per item.
    pub queries: usize,
    /// Key (and value) positions per item.
    pub keys: usize,
    /// Width of each query and key.
    pub depth: usize,
    /// Width of each value.
    pub value_depth: usize,
    /// Factor of the scores `q·k` before the softmax.
    pub scale: f32,
}

/// Sizes of the attention inside a multi-head self-attention layer, read straight
/// from its fused input projection: `qkv` is `[batch, len, 3, heads, head_dim]` (each
/// position's queries, keys and values for every head, as `x · in_proj_weightᵀ` lays
/// them out), the output `[batch, len, heads, head_dim]` (the heads side by side, as
/// the output projection takes them).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PackedAttentionDims {
    /// Sequences.
    pub batch: usize,
    /// Positions per sequence.
    pub len: usize,
    /// Attention heads.
    pub heads: usize,
    /// Width of each head's queries, keys and values.
    pub head_dim: usize,
    /// Factor of the scores `q·k` before the softmax.
    pub scale: f32,
}

impl PackedAttentionDims {
    /// Width of one position's outputs, `heads · head_dim`.
    pub fn width(&self) -> usize {
        self.heads * self.head_dim
    }

    /// The queries (`part` 0), keys (1) or values (2) of `qkv` as `[batch, heads, len,
    /// head_dim]`.
    pub fn part_view(&self, part: usize) -> StridedView {
        let (e, l, d) = (self.width(), self.len, self.head_dim);
        StridedView {
            dims: vec![self.batch, self.heads, l, d],
            strides: vec![l * 3 * e, d, 3 * e, 1],
            offset: part * e,
        }
    }

    /// The output `[batch, len, heads, head_dim]` seen as `[batch, heads, len,
    /// head_dim]`.
    pub fn heads_view(&self) -> StridedView {
        let (e, l, d) = (self.width(), self.len, self.head_dim);
        StridedView { dims: vec![self.batch, self.heads, l, d], strides: vec![l * e, d, e, 1], offset: 0 }
    }

    /// The same attentions as separate `[batch·heads]` items.
    pub fn per_head(&self) -> AttentionDims {
        AttentionDims {
            batch: self.batch * self.heads,
            queries: self.len,
            keys: self.len,
            depth: self.head_dim,
            value_depth: self.head_dim,
            scale: self.scale,
        }
    }
}

/// Geometry of a 2-D convolution: NCHW input, OIHW weight, NCHW output. Stride and
/// padding are `(vertical, horizontal)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dGeometry {
    /// Images in the batch.
    pub batch: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Output channels (filters).
    pub out_channels: usize,
    /// Kernel height.
    pub kernel_h: usize,
    /// Kernel width.
    pub kernel_w: usize,
    /// Stride `(vertical, horizontal)`.
    pub stride: (usize, usize),
    /// Zero padding `(vertical, horizontal)`, added on both sides.
    pub padding: (usize, usize),
}

impl Conv2dGeometry {
    /// Output height: `(in_h + 2·pad − kernel) / stride + 1`.
    pub fn out_h(&self) -> usize {
        (self.in_h + 2 * self.padding.0 - self.kernel_h) / self.stride.0 + 1
    }

    /// Output width.
    pub fn out_w(&self) -> usize {
        (self.in_w + 2 * self.padding.1 - self.kernel_w) / self.stride.1 + 1
    }

    /// Output shape `[batch, out_channels, out_h, out_w]`.
    pub fn output_shape(&self) -> Shape {
        Shape::from([self.batch, self.out_channels, self.out_h(), self.out_w()])
    }
}

/// Geometry of a 2-D max-pool over an NCHW input (square window, same stride and
/// padding both ways; padded positions never win).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dGeometry {
    /// Images in the batch.
    pub batch: usize,
    /// Channels.
    pub channels: usize,
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Window size.
    pub kernel: usize,
    /// Step between windows.
    pub stride: usize,
    /// Padding on every side.
    pub padding: usize,
}

impl Pool2dGeometry {
    /// Output height.
    pub fn out_h(&self) -> usize {
        (self.in_h + 2 * self.padding - self.kernel) / self.stride + 1
    }

    /// Output width.
    pub fn out_w(&self) -> usize {
        (self.in_w + 2 * self.padding - self.kernel) / self.stride + 1
    }

    /// Output shape `[batch, channels, out_h, out_w]`.
    pub fn output_shape(&self) -> Shape {
        Shape::from([self.batch, self.channels, self.out_h(), self.out_w()])
    }
}

/// One step of SGD for one parameter, applied in place:
/// `g = grad + weight_decay·p; v = momentum·v + g; p -= lr·(nesterov ? g + momentum·v : v)`
/// (PyTorch's formulation; with `momentum == 0` no velocity is used).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdStep {
    /// Learning rate.
    pub lr: f32,
    /// Momentum factor (0 disables the velocity buffer).
    pub momentum: f32,
    /// L2 penalty added to the gradient.
    pub weight_decay: f32,
    /// Nesterov momentum.
    pub nesterov: bool,
}

/// One step of Adam/AdamW for one parameter, applied in place. `step` counts from 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamStep {
    /// Learning rate.
    pub lr: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Added to the denominator.
    pub eps: f32,
    /// Weight decay: L2 in the gradient for Adam, decoupled for AdamW.
    pub weight_decay: f32,
    /// Decoupled weight decay (AdamW) instead of L2 (Adam).
    pub decoupled: bool,
    /// The 1-based step number, for bias correction.
    pub step: u64,
}

/// The optional elementwise scale and shift of a layer normalization's rows.
#[derive(Clone, Copy, Debug, Default)]
pub struct RowAffine<'a> {
    /// Scale per feature.
    pub weight: Option<&'a StorageRef>,
    /// Shift per feature.
    pub bias: Option<&'a StorageRef>,
}

/// The per-channel statistics a batch normalization divided by, for its backward pass.
#[derive(Clone, Copy, Debug)]
pub struct ChannelStatistics<'a> {
    /// Mean per channel.
    pub mean: &'a StorageRef,
    /// Population variance per channel.
    pub var: &'a StorageRef,
    /// Added to the variance.
    pub eps: f32,
}

/// The kernels of one device. Every method takes and returns whole tensors' storage, so
/// one call is one coarse kernel (a GEMM, a whole convolution), which keeps dispatch cost
/// negligible and leaves each backend free to fuse inside. Element counts and geometry
/// are validated by `Tensor` before a backend is called.
pub trait Backend: Send + Sync + Debug {
    /// A human-readable description, e.g. `cpu (2 threads)` or an adapter name.
    fn name(&self) -> String;

    /// For downcasting to the backend's concrete type (e.g. to reach a CPU device's
    /// memory statistics).
    fn as_any(&self) -> &dyn Any;

    /// Bytes currently held in this backend's tensors (and pools).
    fn memory_in_use(&self) -> usize;

    /// Moves `data` onto the device.
    fn upload_f32(&self, data: Vec<f32>) -> StorageRef;
    /// Moves integer `data` onto the device.
    fn upload_i32(&self, data: Vec<i32>) -> StorageRef;
    /// `len` copies of `value`.
    fn full(&self, len: usize, value: f32) -> StorageRef;
    /// Copies f32 storage back to the host.
    fn to_vec_f32(&self, storage: &StorageRef) -> Result<Vec<f32>>;
    /// Copies i32 storage back to the host.
    fn to_vec_i32(&self, storage: &StorageRef) -> Result<Vec<i32>>;
    /// Waits until every queued kernel has finished; reports device errors.
    fn synchronize(&self) -> Result<()>;

    /// `op(x)` elementwise.
    fn unary(&self, op: UnaryOp, x: &StorageRef) -> StorageRef;
    /// The gradient of `y = op(x)`: `grad · op'(x)` (backends may use `y` where cheaper).
    fn unary_backward(&self, op: UnaryOp, x: &StorageRef, y: &StorageRef, grad: &StorageRef) -> StorageRef;
    /// [`Backend::unary_backward`] with the gradient handed over: where `grad` is the
    /// only reference to its storage, a backend may write the result into it instead of
    /// allocating. By default it allocates, as `unary_backward` does.
    fn unary_backward_owned(
        &self,
        op: UnaryOp,
        x: &StorageRef,
        y: &StorageRef,
        grad: StorageRef,
    ) -> StorageRef {
        self.unary_backward(op, x, y, &grad)
    }
    /// `a op b` with NumPy broadcasting of `a_shape` and `b_shape` to `out_shape`.
    fn binary(
        &self,
        op: BinaryOp,
        a: &StorageRef,
        a_shape: &Shape,
        b: &StorageRef,
        b_shape: &Shape,
        out_shape: &Shape,
    ) -> StorageRef;
    /// Copies `x` of `shape` broadcast to `out_shape`.
    fn broadcast_to(&self, x: &StorageRef, shape: &Shape, out_shape: &Shape) -> StorageRef;
    /// The f32 elements of `x` in `view`, as a new contiguous buffer of `view.dims`.
    fn gather_view(&self, x: &StorageRef, view: &StridedView) -> StorageRef;
    /// Writes contiguous f32 `src` (`view.dims`) into `dst` at `view`, in place; `dst`
    /// must be a buffer no tensor shares yet (an op's fresh output).
    fn scatter_view(&self, dst: &StorageRef, view: &StridedView, src: &StorageRef);

    /// `[outer, count, inner]`: the positions of `x`'s axis that `indices` (i32) name
    /// (see [`AxisIndexing`]).
    fn gather_axis(&self, x: &StorageRef, indices: &StorageRef, geometry: AxisIndexing) -> StorageRef;
    /// The adjoint of [`Backend::gather_axis`]: `[outer, len, inner]` zeros with each
    /// element of `src` (`[outer, count, inner]`) added at the position its index
    /// names, in the order of `j` (deterministic).
    fn scatter_add_axis(&self, src: &StorageRef, indices: &StorageRef, geometry: AxisIndexing) -> StorageRef;
    /// Sums `[outer, len, inner]` over the middle axis into `[outer, inner]`.
    fn sum_axis(&self, x: &StorageRef, split: AxisSplit) -> StorageRef;
    /// Maxima over the middle axis of `[outer, len, inner]`, and their positions (i32).
    fn max_axis(&self, x: &StorageRef, split: AxisSplit) -> (StorageRef, StorageRef);
    /// Gradient of `max_axis`: `grad[outer, inner]` written at the argmax positions of a
    /// zero `[outer, len, inner]`.
    fn max_axis_backward(&self, grad: &StorageRef, argmax: &StorageRef, split: AxisSplit) -> StorageRef;
    /// Softmax (or log-softmax when `log`) over the middle axis, numerically stable.
    fn softmax(&self, x: &StorageRef, split: AxisSplit, log: bool) -> StorageRef;
    /// Normalizes along the middle axis of `[outer, len, inner]`: `(x − mean)·rstd` per
    /// `(outer, inner)` lane with `rstd = 1/√(var + eps)` (population variance); returns
    /// the result and each lane's `rstd` (`[outer, inner]`) for the backward pass.
    fn normalize_axis(&self, x: &StorageRef, split: AxisSplit, eps: f32) -> (StorageRef, StorageRef);
    /// Gradient of `normalize_axis` from its output `y` and `rstd`:
    /// `rstd·(g − mean(g) − y·mean(g·y))` per lane.
    fn normalize_axis_backward(
        &self,
        y: &StorageRef,
        rstd: &StorageRef,
        grad: &StorageRef,
        split: AxisSplit,
    ) -> StorageRef;
    /// Batch normalization of `x` (`[outer = batch, len = channels, inner]`): each
    /// channel normalized by the batch's mean and population variance over `outer` and
    /// `inner` (`given` is `None`) or by the `given` `(mean, var)`, then
    /// `·weight[c] + bias[c]`. Returns the output and the mean and variance used.
    fn channel_norm(
        &self,
        x: &StorageRef,
        weight: &StorageRef,
        bias: &StorageRef,
        given: Option<(&StorageRef, &StorageRef)>,
        split: AxisSplit,
        eps: f32,
    ) -> (StorageRef, StorageRef, StorageRef);
    /// Gradients of [`Backend::channel_norm`] for `x`, `weight` and `bias` from the
    /// upstream `grad`; `batch_statistics` says whether the forward pass used the
    /// batch's statistics (whose dependence on `x` the input gradient then includes).
    fn channel_norm_backward(
        &self,
        x: &StorageRef,
        grad: &StorageRef,
        weight: &StorageRef,
        statistics: ChannelStatistics,
        split: AxisSplit,
        batch_statistics: bool,
    ) -> (StorageRef, StorageRef, StorageRef);
    /// Normalizes each row of `x` (`[outer = rows, len = features, 1]`) by its mean and
    /// population variance, then `·weight + bias` elementwise along the row where given.
    /// Returns the output and, for the backward pass, each row's mean followed by each
    /// row's `1/√(var + eps)` (`[2, rows]`).
    fn row_norm(
        &self,
        x: &StorageRef,
        affine: RowAffine,
        split: AxisSplit,
        eps: f32,
    ) -> (StorageRef, StorageRef);
    /// Gradients of [`Backend::row_norm`] for `x`, `weight` and `bias` (the last two
    /// meaningful only where the forward pass had them) from the upstream `grad` and
    /// the forward pass's `stats`.
    fn row_norm_backward(
        &self,
        x: &StorageRef,
        grad: &StorageRef,
        weight: Option<&StorageRef>,
        stats: &StorageRef,
        split: AxisSplit,
    ) -> (StorageRef, StorageRef, StorageRef);
    /// Gradient of `softmax` given its output `y`.
    fn softmax_backward(&self, y: &StorageRef, grad: &StorageRef, split: AxisSplit, log: bool) -> StorageRef;
    /// Mean softmax cross-entropy of `logits[n, classes]` against i32 `labels[n]`:
    /// returns the loss (one element) and the softmax probabilities (for backward).
    fn cross_entropy(
        &self,
        logits: &StorageRef,
        labels: &StorageRef,
        n: usize,
        classes: usize,
    ) -> (StorageRef, StorageRef);
    /// Gradient of `cross_entropy` for the logits: `(probs − onehot(labels)) · grad / n`,
    /// where `grad` is the one-element upstream gradient.
    fn cross_entropy_backward(
        &self,
        probs: &StorageRef,
        labels: &StorageRef,
        grad: &StorageRef,
        n: usize,
        classes: usize,
    ) -> StorageRef;

    /// `C = op(A) · op(B)`.
    fn matmul(&self, a: &StorageRef, b: &StorageRef, dims: MatmulDims) -> StorageRef;
    /// `batch.count` products `C[i] = op(A[i]) · op(B[i])`, the results contiguous. By
    /// default each product is one [`Backend::matmul`] on copies of its operands
    /// (correct everywhere; backends override it to run the batch as one kernel).
    fn batched_matmul(
        &self,
        a: &StorageRef,
        b: &StorageRef,
        dims: MatmulDims,
        batch: MatmulBatch,
    ) -> StorageRef {
        let (a_len, b_len, c_len) = (dims.m * dims.k, dims.k * dims.n, dims.m * dims.n);
        let out = self.full(batch.count * c_len, 0.0);
        let flat = |len: usize, offset: usize| StridedView { dims: vec![len], strides: vec![1], offset };
        for i in 0..batch.count {
            let a_i = self.gather_view(a, &flat(a_len, i * batch.a_stride));
            let b_i = self.gather_view(b, &flat(b_len, i * batch.b_stride));
            let c_i = self.matmul(&a_i, &b_i, dims);
            self.scatter_view(&out, &flat(c_len, i * c_len), &c_i);
        }
        out
    }
    /// Scaled dot-product attention of each item: `softmax(scale · q·kᵀ) · v`, with the
    /// attention weights (`[batch, queries, keys]`, the softmax's output) returned too
    /// when `keep_weights` (the backward pass needs them). By default the products and
    /// the softmax run as their own kernels (the scale as one more when it is not 1);
    /// backends override it to keep each item's scores in registers and cache.
    fn attention(
        &self,
        q: &StorageRef,
        k: &StorageRef,
        v: &StorageRef,
        dims: AttentionDims,
        keep_weights: bool,
    ) -> (StorageRef, Option<StorageRef>) {
        let AttentionDims { batch, queries, keys, depth, value_depth, scale } = dims;
        let scores_dims = MatmulDims { m: queries, k: depth, n: keys, trans_a: false, trans_b: true };
        let mut scores = self.batched_matmul(
            q,
            k,
            scores_dims,
            MatmulBatch { count: batch, a_stride: queries * depth, b_stride: keys * depth },
        );
        if scale != 1.0 {
            scores = self.unary(UnaryOp::MulScalar { factor: scale }, &scores);
        }
        let split = AxisSplit { outer: batch * queries, len: keys, inner: 1 };
        let weights = self.softmax(&scores, split, false);
        let out = self.batched_matmul(
            &weights,
            v,
            MatmulDims { m: queries, k: keys, n: value_depth, trans_a: false, trans_b: false },
            MatmulBatch { count: batch, a_stride: queries * keys, b_stride: keys * value_depth },
        );
        (out, keep_weights.then_some(weights))
    }
    /// [`Backend::attention`] of every head of a self-attention layer, read from its
    /// fused projection `qkv` and written with the heads side by side (see
    /// [`PackedAttentionDims`]); the weights, when kept, are `[batch, heads, len,
    /// len]`. By default the heads are copied out, attended, and copied back;
    /// backends override it to read and write the packed layouts in place.
    fn packed_attention(
        &self,
        qkv: &StorageRef,
        dims: PackedAttentionDims,
        keep_weights: bool,
    ) -> (StorageRef, Option<StorageRef>) {
        let [q, k, v] = [0, 1, 2].map(|part| self.gather_view(qkv, &dims.part_view(part)));
        let (heads, weights) = self.attention(&q, &k, &v, dims.per_head(), keep_weights);
        let out = self.full(dims.batch * dims.len * dims.width(), 0.0);
        self.scatter_view(&out, &dims.heads_view(), &heads);
        (out, weights)
    }
    /// A dense layer's forward pass in one kernel: `x · weightᵀ` (`dims` says so:
    /// `[m, k] · [n, k]ᵀ`), plus `bias` `[n]` on every row when given, `activation`
    /// and then `dropout` (element `i` of the row-major result is mask element `i`)
    /// applied as the result is stored.
    fn linear(
        &self,
        x: &StorageRef,
        weight: &StorageRef,
        bias: Option<&StorageRef>,
        dims: MatmulDims,
        activation: Activation,
        dropout: Option<EpilogueDropout>,
    ) -> StorageRef;
    /// Convolution forward, with the bias `[out_channels]` added when given and
    /// `activation` applied to every output as it is stored.
    fn conv2d(
        &self,
        x: &StorageRef,
        weight: &StorageRef,
        bias: Option<&StorageRef>,
        geo: &Conv2dGeometry,
        activation: Activation,
    ) -> StorageRef;
    /// Gradient of the convolution for its input.
    fn conv2d_backward_input(
        &self,
        grad: &StorageRef,
        weight: &StorageRef,
        geo: &Conv2dGeometry,
    ) -> StorageRef;
    /// Gradients of the convolution for its weight and, when asked, its bias.
    fn conv2d_backward_weight(
        &self,
        x: &StorageRef,
        grad: &StorageRef,
        geo: &Conv2dGeometry,
        with_bias: bool,
    ) -> (StorageRef, Option<StorageRef>);
    /// Max-pool forward: the pooled values and, per output, the position of its maximum
    /// within its input plane (`h · in_w + w`, i32).
    fn max_pool2d(&self, x: &StorageRef, geo: &Pool2dGeometry) -> (StorageRef, StorageRef);
    /// [`Backend::max_pool2d`]'s values alone, for a pass nobody differentiates
    /// (inference): backends may skip finding and storing the argmax. By default it
    /// computes both and drops the argmax.
    fn max_pool2d_values(&self, x: &StorageRef, geo: &Pool2dGeometry) -> StorageRef {
        self.max_pool2d(x, geo).0
    }
    /// Max-pool backward: each output gradient added at its argmax.
    fn max_pool2d_backward(&self, grad: &StorageRef, argmax: &StorageRef, geo: &Pool2dGeometry)
    -> StorageRef;
    /// Inverted dropout: element `i` is kept and scaled by `1/(1−p)` when
    /// [`DropoutMask::keeps`]`(i, p)`, else zeroed. The same call on the upstream
    /// gradient is the backward pass.
    fn dropout(&self, x: &StorageRef, p: f32, mask: DropoutMask) -> StorageRef;

    /// One SGD step in place on `param` (and `velocity` when momentum is used).
    fn sgd_update(&self, param: &StorageRef, grad: &StorageRef, velocity: Option<&StorageRef>, step: SgdStep);
    /// One SGD step on every tensor of `targets` (a whole model's parameters); backends
    /// that can update several tensors per kernel override it, the default updates
    /// them one by one.
    fn sgd_update_all(&self, targets: &[SgdTarget<'_>], step: SgdStep) {
        for target in targets {
            self.sgd_update(target.param, target.grad, target.velocity, step);
        }
    }
    /// One Adam/AdamW step in place on `param` and its moment buffers `m`, `v`.
    fn adam_update(
        &self,
        param: &StorageRef,
        grad: &StorageRef,
        m: &StorageRef,
        v: &StorageRef,
        step: AdamStep,
    );
    /// Copies `src` into `dst` in place (same length and type): restoring checkpoints.
    fn copy_into(&self, dst: &StorageRef, src: &StorageRef);
}
