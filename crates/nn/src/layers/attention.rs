//! `MultiheadAttention` with PyTorch's parameter layout (`in_proj_weight` `[3E, E]`,
//! `in_proj_bias`, `out_proj.weight`, `out_proj.bias`), `batch_first` or
//! sequence-first inputs, and key-padding, additive and causal masks. Built from
//! fused dense products (one for the whole input projection in self-attention),
//! `packed_self_attention` on that projection (or `scaled_dot_product_attention`, or
//! with masks batched matrix products and `softmax`) and view ops, so its gradient
//! follows from theirs.

use kiln_tensor::{Shape, Tensor};

use crate::{Initializer, Mode, Module, NnError, Result, SummaryStyle};

/// What a mask value adds to a score it hides: far below any score, yet finite, so
/// that a hidden position's weight is exactly 0 and `0 · mask` stays 0.
const HIDDEN: f32 = -1e30;

/// The masks of one attention call, all optional.
#[derive(Clone, Copy, Debug, Default)]
pub struct AttentionMasks<'a> {
    /// `[batch, source]`, 1 where a key is padding to ignore and 0 elsewhere (PyTorch's
    /// boolean `key_padding_mask`, as f32).
    pub key_padding: Option<&'a Tensor>,
    /// `[target, source]` added to the scores before the softmax (PyTorch's float
    /// `attn_mask`).
    pub additive: Option<&'a Tensor>,
    /// Each target position sees only source positions up to its own (a decoder's
    /// mask; PyTorch's `is_causal`).
    pub causal: bool,
}

/// Multi-head attention (`torch.nn.MultiheadAttention`, without dropout on the
/// weights). As a [`Module`] it is self-attention; [`MultiheadAttention::attend`]
/// takes separate query, key and value and masks.
///
/// ```
/// use kiln_cpu::CpuDevice;
/// use kiln_nn::{Initializer, Mode, Module, MultiheadAttention};
/// use kiln_tensor::{Device, Tensor};
///
/// let device = Device::cpu();
/// let attention = MultiheadAttention::new(&mut Initializer::new(&device, 0), 16, 4).batch_first();
/// let x = Tensor::randn([2, 5, 16], 1, &device);
/// assert_eq!(attention.forward(&x, Mode::Eval).dims(), &[2, 5, 16]);
/// let names: Vec<String> = attention.named_parameters().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"]);
/// ```
pub struct MultiheadAttention {
    in_proj_weight: Tensor,
    in_proj_bias: Tensor,
    out_proj_weight: Tensor,
    out_proj_bias: Tensor,
    heads: usize,
    batch_first: bool,
}

impl MultiheadAttention {
    /// Attention over `embed_dim` features split into `heads` heads (which must divide
    /// it), inputs `[sequence, batch, embed_dim]` as PyTorch's default.
    pub fn new(init: &mut Initializer, embed_dim: usize, heads: usize) -> Self {
        assert!(
            heads > 0 && embed_dim.is_multiple_of(heads),
            "MultiheadAttention: {heads} heads do not divide embed_dim {embed_dim}"
        );
        MultiheadAttention {
            in_proj_weight: init.weight([3 * embed_dim, embed_dim], embed_dim, embed_dim),
            in_proj_bias: init.bias(3 * embed_dim),
            out_proj_weight: init.weight([embed_dim, embed_dim], embed_dim, embed_dim),
            out_proj_bias: init.bias(embed_dim),
            heads,
            batch_first: false,
        }
    }

    /// Takes and returns `[batch, sequence, embed_dim]` (PyTorch's `batch_first=True`).
    pub fn batch_first(mut self) -> Self {
        self.batch_first = true;
        self
    }

    fn embed_dim(&self) -> usize {
        self.out_proj_weight.dims()[0]
    }

    /// `x · Wᵀ + b` with `W`, `b` rows `part·E .. (part+1)·E` of the input projection,
    /// as one fused product.
    fn project(&self, x: &Tensor, part: usize) -> Tensor {
        let e = self.embed_dim();
        let weight = self.in_proj_weight.narrow(0, part * e, e);
        x.linear(&weight, Some(&self.in_proj_bias.narrow(0, part * e, e)))
    }

    /// `[B, L, E]` as `[B, heads, L, E / heads]`.
    fn split_heads(&self, x: &Tensor) -> Tensor {
        let (b, l) = (x.dims()[0], x.dims()[1]);
        x.reshape([b, l, self.heads, self.embed_dim() / self.heads]).permute(&[0, 2, 1, 3])
    }

    /// Queries, keys and values `[B, heads, L, E / heads]` of one sequence `x` `[B, L,
    /// E]`: a single product with the whole input projection, split by views.
    fn project_self(&self, x: &Tensor) -> [Tensor; 3] {
        let e = self.embed_dim();
        let (b, l, d) = (x.dims()[0], x.dims()[1], e / self.heads);
        let qkv = x.linear(&self.in_proj_weight, Some(&self.in_proj_bias));
        let parts = qkv.reshape([b, l, 3, self.heads, d]).permute(&[2, 0, 3, 1, 4]);
        [0, 1, 2].map(|part| parts.narrow(0, part, 1).squeeze(0))
    }

    /// Attention of `query` `[B, T, E]` (or `[T, B, E]`) over `key` and `value`
    /// `[B, S, E]` (or `[S, B, E]`): the output has the query's shape.
    pub fn attend(&self, query: &Tensor, key: &Tensor, value: &Tensor, masks: AttentionMasks<'_>) -> Tensor {
        let e = self.embed_dim();
        for (what, t) in [("query", query), ("key", key), ("value", value)] {
            assert!(
                t.shape().rank() == 3 && t.dims()[2] == e,
                "MultiheadAttention: the {what} must be 3-dimensional with {e} features, got shape {}",
                t.shape()
            );
        }
        let batch_major = |t: &Tensor| if self.batch_first { t.clone() } else { t.transpose(0, 1) };
        let query_major = batch_major(query);
        let (b, t) = (query_major.dims()[0], query_major.dims()[1]);
        let s = key.dims()[usize::from(self.batch_first)];
        let self_attention = query.id() == key.id() && key.id() == value.id();
        let unmasked = masks.key_padding.is_none() && masks.additive.is_none() && !masks.causal;
        if self_attention && unmasked {
            // The heads read from the fused projection and written side by side in place.
            let qkv = query_major.linear(&self.in_proj_weight, Some(&self.in_proj_bias));
            return self.project_out(&qkv.packed_self_attention(self.heads));
        }
        let [q, k, v] = if self_attention {
            self.project_self(&query_major)
        } else {
            [
                self.split_heads(&self.project(&query_major, 0)),
                self.split_heads(&self.project(&batch_major(key), 1)),
                self.split_heads(&self.project(&batch_major(value), 2)),
            ]
        };
        if unmasked {
            let heads = q.scaled_dot_product_attention(&k, &v, None);
            return self.merge_heads(&heads, [b, t, e]);
        }
        let head_dim = e / self.heads;
        let mut scores = q.matmul_with(&k, false, true).mul_scalar(1.0 / (head_dim as f32).sqrt());
        if let Some(padding) = masks.key_padding {
            assert_eq!(
                padding.dims(),
                [b, s],
                "MultiheadAttention: key_padding must be [batch, source] = [{b}, {s}]"
            );
            scores = scores.add(&padding.mul_scalar(HIDDEN).reshape([b, 1, 1, s]));
        }
        if let Some(additive) = masks.additive {
            assert_eq!(
                additive.dims(),
                [t, s],
                "MultiheadAttention: the additive mask must be [target, source] = [{t}, {s}]"
            );
            scores = scores.add(additive);
        }
        if masks.causal {
            let above: Vec<f32> = (0..t * s).map(|i| if i % s > i / s { HIDDEN } else { 0.0 }).collect();
            scores = scores.add(&Tensor::from_vec([t, s], above, q.device()));
        }
        self.merge_heads(&scores.softmax(3).matmul(&v), [b, t, e])
    }

    /// The heads' outputs `[B, heads, T, E / heads]` side by side and through the
    /// output projection, in the input's layout.
    fn merge_heads(&self, heads: &Tensor, [b, t, e]: [usize; 3]) -> Tensor {
        self.project_out(&heads.permute(&[0, 2, 1, 3]).reshape([b, t, e]))
    }

    /// The output projection of the heads side by side `[B, T, E]`, in the input's
    /// layout.
    fn project_out(&self, merged: &Tensor) -> Tensor {
        let out = merged.linear(&self.out_proj_weight, Some(&self.out_proj_bias));
        if self.batch_first { out } else { out.transpose(0, 1) }
    }
}

impl Module for MultiheadAttention {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Tensor {
        self.attend(x, x, x, AttentionMasks::default())
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape> {
        let e = self.embed_dim();
        if input.rank() != 2 || input.dims()[1] != e {
            return Err(NnError::Shape(format!(
                "attention {e}: expects [sequence, {e}] per example, got {input}"
            )));
        }
        Ok(input.clone())
    }

    fn summary_style(&self) -> SummaryStyle {
        SummaryStyle::Row(format!("attention {}×{}", self.heads, self.embed_dim() / self.heads))
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        f(&format!("{prefix}in_proj_weight"), &self.in_proj_weight);
        f(&format!("{prefix}in_proj_bias"), &self.in_proj_bias);
        f(&format!("{prefix}out_proj.weight"), &self.out_proj_weight);
        f(&format!("{prefix}out_proj.bias"), &self.out_proj_bias);
    }

    fn visit_parameters_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor)) {
        f(&format!("{prefix}in_proj_weight"), &mut self.in_proj_weight);
        f(&format!("{prefix}in_proj_bias"), &mut self.in_proj_bias);
        f(&format!("{prefix}out_proj.weight"), &mut self.out_proj_weight);
        f(&format!("{prefix}out_proj.bias"), &mut self.out_proj_bias);
    }
}
