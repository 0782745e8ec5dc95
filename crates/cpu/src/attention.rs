//! Scaled dot-product attention, fused: for each item and each query row, the scores
//! against every key, their softmax and the weighted sum of the values are computed
//! while the row sits in cache, so the `[queries, keys]` score matrix is never written
//! out (only the softmax's output, when the backward pass needs it). Items run in
//! parallel; inside an item the keys are transposed once so that a row's scores come
//! from 16-lane multiply-adds down the depth. Rows are read and written through
//! strides, so a self-attention layer's heads come straight from its fused projection
//! and go straight to the output projection's layout.

use kiln_tensor::{AttentionDims, PackedAttentionDims};
use rayon::prelude::*;

use crate::memory::HostMemory;
use crate::simd::{VectorLoop, widest};
use crate::softmax_row::softmax_row;

/// Lanes of the score and value loops: one AVX-512 register, two AVX2 ones.
const LANES: usize = 16;

/// `softmax(scale · q·kᵀ) · v` of every item, and the softmax's output when
/// `keep_weights`.
pub fn attention(
    mem: &HostMemory,
    [q, k, v]: [&[f32]; 3],
    dims: AttentionDims,
    keep_weights: bool,
) -> (Vec<f32>, Option<Vec<f32>>) {
    let AttentionDims { batch, queries, keys, depth, value_depth, scale } = dims;
    let mut out = mem.take(batch * queries * value_depth);
    let mut weights = keep_weights.then(|| mem.take(batch * queries * keys));
    let item = |b: usize, out: &mut [f32], weights: Option<&mut [f32]>| {
        widest(AttentionItem {
            q: Rows { data: q, start: b * queries * depth, stride: depth, width: depth },
            k: Rows { data: k, start: b * keys * depth, stride: depth, width: depth },
            v: Rows { data: v, start: b * keys * value_depth, stride: value_depth, width: value_depth },
            out: RowsMut { data: out, start: 0, stride: value_depth },
            weights,
            queries,
            keys,
            scale,
        })
    };
    for_each_item(&mut out, queries * value_depth, weights.as_deref_mut(), queries * keys, item);
    (out, weights)
}

/// [`attention`] of every head of a self-attention layer, read from its fused
/// projection `qkv` `[batch, len, 3, heads, head_dim]` and written as `[batch, len,
/// heads, head_dim]`, in place: each sequence is one task, its heads one after another.
pub fn packed_attention(
    mem: &HostMemory,
    qkv: &[f32],
    dims: PackedAttentionDims,
    keep_weights: bool,
) -> (Vec<f32>, Option<Vec<f32>>) {
    let PackedAttentionDims { batch, len, heads, head_dim, scale } = dims;
    let width = dims.width();
    let mut out = mem.take(batch * len * width);
    let mut weights = keep_weights.then(|| mem.take(batch * heads * len * len));
    let sequence = |b: usize, out: &mut [f32], mut weights: Option<&mut [f32]>| {
        for h in 0..heads {
            let rows = |part: usize| Rows {
                data: qkv,
                start: b * len * 3 * width + part * width + h * head_dim,
                stride: 3 * width,
                width: head_dim,
            };
            widest(AttentionItem {
                q: rows(0),
                k: rows(1),
                v: rows(2),
                out: RowsMut { data: &mut *out, start: h * head_dim, stride: width },
                weights: weights.as_deref_mut().map(|w| &mut w[h * len * len..][..len * len]),
                queries: len,
                keys: len,
                scale,
            })
        }
    };
    for_each_item(&mut out, len * width, weights.as_deref_mut(), heads * len * len, sequence);
    (out, weights)
}

/// `f(i, out, weights)` in parallel for each item `i`: its `out_len` outputs and, where
/// weights are kept, its `weights_len` of them.
fn for_each_item<F>(out: &mut [f32], out_len: usize, weights: Option<&mut [f32]>, weights_len: usize, f: F)
where
    F: Fn(usize, &mut [f32], Option<&mut [f32]>) + Sync,
{
    let items = out.par_chunks_mut(out_len.max(1)).enumerate();
    match weights {
        Some(weights) => items
            .zip(weights.par_chunks_mut(weights_len.max(1)))
            .for_each(|((i, out), weights)| f(i, out, Some(weights))),
        None => items.for_each(|(i, out)| f(i, out, None)),
    }
}

/// Rows of `width` values, row `i` starting at `data[start + i·stride]`.
#[derive(Clone, Copy)]
struct Rows<'a> {
    data: &'a [f32],
    start: usize,
    stride: usize,
    width: usize,
}

impl<'a> Rows<'a> {
    #[inline(always)]
    fn row(&self, i: usize) -> &'a [f32] {
        &self.data[self.start + i * self.stride..][..self.width]
    }
}

/// Output rows, row `i` starting at `data[start + i·stride]`.
struct RowsMut<'a> {
    data: &'a mut [f32],
    start: usize,
    stride: usize,
}

/// One item's attention, compiled whole for each instruction set.
struct AttentionItem<'a> {
    q: Rows<'a>,
    k: Rows<'a>,
    v: Rows<'a>,
    out: RowsMut<'a>,
    /// The item's `[queries, keys]` softmax output, when kept.
    weights: Option<&'a mut [f32]>,
    queries: usize,
    keys: usize,
    scale: f32,
}

impl VectorLoop for AttentionItem<'_> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let AttentionItem { q, k, v, out, mut weights, queries, keys, scale } = self;
        let (depth, value_depth) = (q.width, v.width);
        let padded = keys.next_multiple_of(LANES);
        // kᵀ with each depth's row padded by zeros to whole lanes.
        let mut keys_t = vec![0.0f32; depth * padded];
        for j in 0..keys {
            for (d, value) in k.row(j).iter().enumerate() {
                keys_t[d * padded + j] = *value;
            }
        }
        let mut scores = vec![0.0f32; padded];
        // The row's softmax, where no weights are kept to hold it.
        let mut probabilities = vec![0.0f32; if weights.is_some() { 0 } else { keys }];
        for i in 0..queries {
            let query = q.row(i);
            // Scores four 16-lane chunks at a time: four independent sums down the depth.
            let chunks = padded / LANES;
            let mut chunk = 0;
            while chunk < chunks {
                let lanes = &mut scores[chunk * LANES..];
                if chunk + SCORE_BLOCK <= chunks {
                    let sums = dot_columns::<SCORE_BLOCK>(query, &keys_t, padded, chunk);
                    lanes.iter_mut().zip(sums.as_flattened()).for_each(|(l, s)| *l = s * scale);
                    chunk += SCORE_BLOCK;
                } else {
                    let sums = dot_columns::<1>(query, &keys_t, padded, chunk);
                    lanes.iter_mut().zip(sums.as_flattened()).for_each(|(l, s)| *l = s * scale);
                    chunk += 1;
                }
            }
            let row = match weights.as_deref_mut() {
                Some(weights) => &mut weights[i * keys..][..keys],
                None => &mut probabilities[..],
            };
            softmax_row(row, &scores[..keys], false);
            let out_row = &mut out.data[out.start + i * out.stride..][..value_depth];
            weighted_values(row, v, out_row);
        }
    }
}

/// Chunks of 16 scores computed together (independent sums keep the multiply-adds
/// from waiting on each other).
const SCORE_BLOCK: usize = 4;

/// `q·kᵀ` of one query for the `N` 16-lane chunks of keys from `first_chunk` on, from
/// the transposed keys (`padded` lanes a depth row).
#[inline(always)]
fn dot_columns<const N: usize>(
    query: &[f32],
    keys_t: &[f32],
    padded: usize,
    first_chunk: usize,
) -> [[f32; LANES]; N] {
    let mut sums = [[0.0f32; LANES]; N];
    for (d, q) in query.iter().enumerate() {
        let start = d * padded + first_chunk * LANES;
        for (n, sum) in sums.iter_mut().enumerate() {
            let column: &[f32; LANES] = keys_t[start + n * LANES..][..LANES].try_into().expect("16 lanes");
            for lane in 0..LANES {
                sum[lane] = q.mul_add(column[lane], sum[lane]);
            }
        }
    }
    sums
}

/// `out = Σⱼ row[j] · v[j]`: 32 output lanes at a time, even and odd keys in separate
/// sums (four independent chains), then 16, then one lane at a time.
#[inline(always)]
fn weighted_values(row: &[f32], v: Rows<'_>, out: &mut [f32]) {
    let mut first = 0;
    while first + 2 * LANES <= out.len() {
        let sums = value_sums::<2>(row, v, first);
        out[first..first + 2 * LANES].copy_from_slice(sums.as_flattened());
        first += 2 * LANES;
    }
    if first + LANES <= out.len() {
        let sums = value_sums::<1>(row, v, first);
        out[first..first + LANES].copy_from_slice(sums.as_flattened());
        first += LANES;
    }
    for (e, o) in out.iter_mut().enumerate().skip(first) {
        *o = row.iter().enumerate().map(|(j, p)| p * v.row(j)[e]).sum();
    }
}

/// `sums += p · values[..N·16]`.
#[inline(always)]
fn add_scaled<const N: usize>(sums: &mut [[f32; LANES]; N], p: f32, values: &[f32]) {
    for (n, sum) in sums.iter_mut().enumerate() {
        let values: &[f32; LANES] = values[n * LANES..][..LANES].try_into().expect("16 lanes");
        for lane in 0..LANES {
            sum[lane] = p.mul_add(values[lane], sum[lane]);
        }
    }
}

/// `Σⱼ row[j] · v[j][first..first + N·16]`, even and odd `j` summed apart.
#[inline(always)]
fn value_sums<const N: usize>(row: &[f32], v: Rows<'_>, first: usize) -> [[f32; LANES]; N] {
    let mut even = [[0.0f32; LANES]; N];
    let mut odd = [[0.0f32; LANES]; N];
    let pairs = row.len() / 2;
    for pair in 0..pairs {
        add_scaled(&mut even, row[2 * pair], &v.row(2 * pair)[first..]);
        add_scaled(&mut odd, row[2 * pair + 1], &v.row(2 * pair + 1)[first..]);
    }
    if row.len() % 2 == 1 {
        add_scaled(&mut even, row[row.len() - 1], &v.row(row.len() - 1)[first..]);
    }
    for (e, o) in even.iter_mut().zip(odd) {
        e.iter_mut().zip(o).for_each(|(e, o)| *e += o);
    }
    even
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition in f64: scores, softmax, weighted sum.
    fn reference(q: &[f32], k: &[f32], v: &[f32], dims: AttentionDims) -> (Vec<f64>, Vec<f64>) {
        let AttentionDims { batch, queries, keys, depth, value_depth, scale } = dims;
        let (mut out, mut weights) = (vec![], vec![]);
        for b in 0..batch {
            for i in 0..queries {
                let score = |j: usize| -> f64 {
                    (0..depth)
                        .map(|d| {
                            q[(b * queries + i) * depth + d] as f64 * k[(b * keys + j) * depth + d] as f64
                        })
                        .sum::<f64>()
                        * scale as f64
                };
                let scores: Vec<f64> = (0..keys).map(score).collect();
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let total: f64 = scores.iter().map(|s| (s - max).exp()).sum();
                let p: Vec<f64> = scores.iter().map(|s| (s - max).exp() / total).collect();
                for e in 0..value_depth {
                    out.push((0..keys).map(|j| p[j] * v[(b * keys + j) * value_depth + e] as f64).sum());
                }
                weights.extend(p);
            }
        }
        (out, weights)
    }

    #[test]
    fn fused_attention_matches_the_definition_for_ragged_sizes() {
        let value = |seed: usize, i: usize| (((i * 7 + seed * 13) % 23) as f32 - 11.0) / 7.0;
        for (batch, queries, keys, depth, value_depth) in
            [(1, 1, 1, 1, 1), (3, 5, 17, 4, 3), (2, 50, 50, 32, 32), (2, 7, 33, 19, 40)]
        {
            let dims = AttentionDims { batch, queries, keys, depth, value_depth, scale: 0.3 };
            let q: Vec<f32> = (0..batch * queries * depth).map(|i| value(1, i)).collect();
            let k: Vec<f32> = (0..batch * keys * depth).map(|i| value(2, i)).collect();
            let v: Vec<f32> = (0..batch * keys * value_depth).map(|i| value(3, i)).collect();
            let (out, weights) = attention(&HostMemory::default(), [&q, &k, &v], dims, true);
            let (want_out, want_weights) = reference(&q, &k, &v, dims);
            for (name, got, want) in [("output", out, want_out), ("weights", weights.unwrap(), want_weights)]
            {
                assert_eq!(got.len(), want.len(), "{name} of {dims:?}");
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (*g as f64 - w).abs() < 1e-5 * (1.0 + w.abs()),
                        "{name}[{i}] of {dims:?}: {g} vs {w}"
                    );
                }
            }
            let (alone, none) = attention(&HostMemory::default(), [&q, &k, &v], dims, false);
            assert!(none.is_none());
            assert_eq!(alone.len(), batch * queries * value_depth);
        }
    }

    #[test]
    fn packed_attention_equals_attention_on_the_heads_copied_out() {
        let (batch, len, heads, head_dim) = (3, 9, 2, 5);
        let dims = PackedAttentionDims { batch, len, heads, head_dim, scale: 0.45 };
        let width = heads * head_dim;
        let qkv: Vec<f32> =
            (0..batch * len * 3 * width).map(|i| ((i * 11 % 29) as f32 - 14.0) / 9.0).collect();
        // [batch, heads, len, head_dim] copies of the queries, keys and values.
        let part = |p: usize| -> Vec<f32> {
            let mut out = vec![];
            for b in 0..batch {
                for h in 0..heads {
                    for i in 0..len {
                        let start = (b * len + i) * 3 * width + p * width + h * head_dim;
                        out.extend_from_slice(&qkv[start..start + head_dim]);
                    }
                }
            }
            out
        };
        let (q, k, v) = (part(0), part(1), part(2));
        let memory = HostMemory::default();
        let (want, want_weights) = attention(&memory, [&q, &k, &v], dims.per_head(), true);
        let (got, got_weights) = packed_attention(&memory, &qkv, dims, true);
        assert_eq!(got_weights, want_weights, "weights are [batch, heads, len, len] either way");
        for b in 0..batch {
            for h in 0..heads {
                for i in 0..len {
                    let got = &got[(b * len + i) * width + h * head_dim..][..head_dim];
                    let want = &want[((b * heads + h) * len + i) * head_dim..][..head_dim];
                    assert_eq!(got, want, "sequence {b}, head {h}, position {i}");
                }
            }
        }
        assert!(packed_attention(&memory, &qkv, dims, false).1.is_none());
    }
}
