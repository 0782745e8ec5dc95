//! Scaled dot-product attention as one op (PyTorch's
//! `F.scaled_dot_product_attention` without a mask or dropout): `softmax(scale ·
//! q·kᵀ) · v` over the last two dimensions, which a backend may run without writing
//! the scores out. The backward pass is the chain of the products' and the softmax's
//! gradients, from the attention weights the forward pass kept.

use super::{expect_f32, expect_same_device};
use crate::autograd::{BackwardRule, is_recording};
use crate::{AttentionDims, PackedAttentionDims, Shape, StorageRef, Tensor};

struct AttentionBackward {
    /// The softmax's output, `[.., queries, keys]` as the query's leading dimensions.
    weights: StorageRef,
    keys: usize,
    scale: f32,
}

impl BackwardRule for AttentionBackward {
    fn backward(&self, inputs: &[Tensor], _output: &Tensor, grad: Tensor) -> Vec<Option<Tensor>> {
        let (q, k, v) = (&inputs[0], &inputs[1], &inputs[2]);
        let mut weights_shape = q.dims().to_vec();
        *weights_shape.last_mut().expect("rank ≥ 2") = self.keys;
        let weights = Tensor::from_storage(self.weights.clone(), Shape::new(weights_shape), q.device());
        let wanted = [q.requires_grad(), k.requires_grad(), v.requires_grad()];
        attention_gradients([q, k, v], &weights, &grad, self.scale, wanted).into()
    }
}

/// The gradients of `softmax(scale · q·kᵀ) · v` for `q`, `k` and `v` (those `wanted`)
/// from the softmax's output `weights` and the output's gradient:
/// dV = Pᵀ·dO; dP = dO·Vᵀ; dS = softmax′(P)·dP·scale; dQ = dS·K; dK = dSᵀ·Q.
fn attention_gradients(
    [q, k, v]: [&Tensor; 3],
    weights: &Tensor,
    grad: &Tensor,
    scale: f32,
    [want_q, want_k, want_v]: [bool; 3],
) -> [Option<Tensor>; 3] {
    let dv = want_v.then(|| weights.matmul_with(grad, true, false));
    if !want_q && !want_k {
        return [None, None, dv];
    }
    let dp = grad.matmul_with(v, false, true);
    let split = weights.shape().split_at_axis(weights.shape().rank() - 1);
    let device = weights.device();
    let ds = device.backend().softmax_backward(weights.storage(), dp.storage(), split, false);
    let ds = Tensor::from_storage(ds, weights.shape().clone(), device);
    let ds = if scale == 1.0 { ds } else { ds.mul_scalar(scale) };
    [want_q.then(|| ds.matmul(k)), want_k.then(|| ds.matmul_with(q, true, false)), dv]
}

struct PackedAttentionBackward {
    /// The softmax's output, `[batch, heads, len, len]`.
    weights: StorageRef,
    dims: PackedAttentionDims,
}

impl BackwardRule for PackedAttentionBackward {
    fn backward(&self, inputs: &[Tensor], _output: &Tensor, grad: Tensor) -> Vec<Option<Tensor>> {
        let qkv = &inputs[0];
        let (device, d) = (qkv.device(), self.dims);
        let backend = device.backend();
        let heads_shape = Shape::from([d.batch, d.heads, d.len, d.head_dim]);
        let part = |p: usize| {
            Tensor::from_storage(
                backend.gather_view(qkv.storage(), &d.part_view(p)),
                heads_shape.clone(),
                device,
            )
        };
        let (q, k, v) = (part(0), part(1), part(2));
        let grad =
            Tensor::from_storage(backend.gather_view(grad.storage(), &d.heads_view()), heads_shape, device);
        let weights = Tensor::from_storage(self.weights.clone(), [d.batch, d.heads, d.len, d.len], device);
        let grads = attention_gradients([&q, &k, &v], &weights, &grad, d.scale, [true; 3]);
        let dqkv = backend.full(d.batch * d.len * 3 * d.width(), 0.0);
        for (part, g) in grads.iter().enumerate() {
            let g = g.as_ref().expect("every part's gradient is computed");
            backend.scatter_view(&dqkv, &d.part_view(part), g.storage());
        }
        vec![Some(Tensor::from_storage(dqkv, qkv.shape().clone(), device))]
    }
}

impl Tensor {
    /// Scaled dot-product attention of queries `self` `[.., L, D]` over keys `[.., S,
    /// D]` and values `[.., S, Dv]` (the leading dimensions equal): `softmax(scale ·
    /// q·kᵀ) · v`, `[.., L, Dv]`, with `scale` `1/√D` unless given (PyTorch's
    /// `F.scaled_dot_product_attention` without a mask). One op: the CPU keeps each
    /// row's scores in cache instead of writing them out and reading them back.
    ///
    /// ```
    /// use kiln_cpu::CpuDevice;
    /// use kiln_tensor::{Device, Tensor};
    /// let device = Device::cpu();
    /// let q = Tensor::from_vec([1, 2], vec![0.0, 0.0], &device);
    /// let k = Tensor::from_vec([2, 2], vec![1.0, 0.0, 0.0, 1.0], &device);
    /// let v = Tensor::from_vec([2, 1], vec![2.0, 4.0], &device);
    /// // Equal scores: the output is the mean of the values.
    /// assert_eq!(q.scaled_dot_product_attention(&k, &v, None).to_vec().unwrap(), vec![3.0]);
    /// ```
    pub fn scaled_dot_product_attention(&self, key: &Tensor, value: &Tensor, scale: Option<f32>) -> Tensor {
        const OP: &str = "scaled_dot_product_attention";
        for t in [self, key, value] {
            expect_f32(OP, t);
            expect_same_device(OP, self, t);
        }
        let (q, k, v) = (self.dims(), key.dims(), value.dims());
        let rank = q.len();
        assert!(
            rank >= 2 && k.len() == rank && v.len() == rank,
            "{OP}: query, key and value must have the same rank (at least 2), got shapes {}, {} and {}",
            self.shape(),
            key.shape(),
            value.shape()
        );
        let leading = &q[..rank - 2];
        assert!(
            k[..rank - 2] == *leading && v[..rank - 2] == *leading,
            "{OP}: query, key and value must have the same leading dimensions, got shapes {}, {} and {}",
            self.shape(),
            key.shape(),
            value.shape()
        );
        let (queries, depth, keys, value_depth) = (q[rank - 2], q[rank - 1], k[rank - 2], v[rank - 1]);
        assert!(
            k[rank - 1] == depth && v[rank - 2] == keys,
            "{OP}: keys {} must be [.., S, {depth}] and values {} [.., S, Dv] with the same S",
            key.shape(),
            value.shape()
        );
        assert!(keys > 0, "{OP}: there must be at least one key, got shape {}", key.shape());
        let scale = scale.unwrap_or(1.0 / (depth as f32).sqrt());
        let dims =
            AttentionDims { batch: leading.iter().product(), queries, keys, depth, value_depth, scale };
        let inputs = [self, key, value];
        let keep_weights = is_recording() && inputs.iter().any(|t| t.requires_grad());
        let (output, weights) = self.device().backend().attention(
            self.storage(),
            key.storage(),
            value.storage(),
            dims,
            keep_weights,
        );
        let mut shape = q.to_vec();
        shape[rank - 1] = value_depth;
        match weights {
            Some(weights) => Tensor::from_op(
                output,
                Shape::new(shape.as_slice()),
                &inputs,
                AttentionBackward { weights, keys, scale },
            ),
            None => Tensor::from_storage(output, Shape::new(shape.as_slice()), self.device()),
        }
    }

    /// The attention core of multi-head self-attention, on the layer's fused input
    /// projection: `self` `[B, L, 3·E]` holds each position's queries, keys and values
    /// for every head (`[3, heads, E / heads]`, as `x · in_proj_weightᵀ` gives them);
    /// the result `[B, L, E]` is each head's [`Tensor::scaled_dot_product_attention`]
    /// (scale `1/√(E / heads)`) with the heads side by side, ready for the output
    /// projection. The CPU reads and writes those layouts in place, with no copies of
    /// the heads in between (PyTorch's `MultiheadAttention` fast path does the same).
    pub fn packed_self_attention(&self, heads: usize) -> Tensor {
        const OP: &str = "packed_self_attention";
        expect_f32(OP, self);
        let dims = self.dims();
        assert!(
            dims.len() == 3 && heads > 0 && dims[2].is_multiple_of(3 * heads) && dims[1] > 0,
            "{OP}: expects [batch, len, 3·heads·head_dim] with len ≥ 1, got shape {} for {heads} heads",
            self.shape()
        );
        let head_dim = dims[2] / (3 * heads);
        let packed = PackedAttentionDims {
            batch: dims[0],
            len: dims[1],
            heads,
            head_dim,
            scale: 1.0 / (head_dim as f32).sqrt(),
        };
        let keep_weights = is_recording() && self.requires_grad();
        let (output, weights) =
            self.device().backend().packed_attention(self.storage(), packed, keep_weights);
        let shape = Shape::from([packed.batch, packed.len, packed.width()]);
        match weights {
            Some(weights) => {
                Tensor::from_op(output, shape, &[self], PackedAttentionBackward { weights, dims: packed })
            }
            None => Tensor::from_storage(output, shape, self.device()),
        }
    }
}
