//! Scaled dot-product attention, fused: for each item and each query row, the scores
//! against every key, their softmax and the weighted sum of the values are computed
//! while the row sits in cache, so the `[queries, keys]` score matrix is never written
//! out (only the softmax's output, when the backward pass needs it). Items run in
//! parallel; inside an item the keys are transposed once so that a row's scores come
//! from 16-lane multiply-adds down the depth.

use kiln_tensor::AttentionDims;
use kiln_tensor::fast_math::exp;
use rayon::prelude::*;

use crate::memory::HostMemory;
use crate::simd::{VectorLoop, widest};

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
    let AttentionDims { batch, queries, keys, depth, value_depth, .. } = dims;
    let mut out = mem.take(batch * queries * value_depth);
    let mut weights = keep_weights.then(|| mem.take(batch * queries * keys));
    let out_items = out.par_chunks_mut((queries * value_depth).max(1));
    let run = |(item, out): (usize, &mut [f32]), weights: Option<&mut [f32]>| {
        widest(AttentionItem {
            q: &q[item * queries * depth..][..queries * depth],
            k: &k[item * keys * depth..][..keys * depth],
            v: &v[item * keys * value_depth..][..keys * value_depth],
            out,
            weights,
            dims,
        })
    };
    match weights.as_mut() {
        Some(weights) => out_items
            .enumerate()
            .zip(weights.par_chunks_mut((queries * keys).max(1)))
            .for_each(|(item, weights)| run(item, Some(weights))),
        None => out_items.enumerate().for_each(|item| run(item, None)),
    }
    (out, weights)
}

/// One item's attention, compiled whole for each instruction set.
struct AttentionItem<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    out: &'a mut [f32],
    weights: Option<&'a mut [f32]>,
    dims: AttentionDims,
}

impl VectorLoop for AttentionItem<'_> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let AttentionDims { keys, depth, value_depth, scale, .. } = self.dims;
        let padded = keys.next_multiple_of(LANES);
        // kᵀ with each depth's row padded by zeros to whole lanes.
        let mut keys_t = vec![0.0f32; depth * padded];
        for (j, key) in self.k.chunks_exact(depth).enumerate() {
            for (d, value) in key.iter().enumerate() {
                keys_t[d * padded + j] = *value;
            }
        }
        let mut scores = vec![0.0f32; padded];
        let mut weights = self.weights;
        for (i, (query, out)) in
            self.q.chunks_exact(depth).zip(self.out.chunks_exact_mut(value_depth)).enumerate()
        {
            for (chunk, lanes) in scores.chunks_exact_mut(LANES).enumerate() {
                let mut sums = [0.0f32; LANES];
                for (d, q) in query.iter().enumerate() {
                    let column = &keys_t[d * padded + chunk * LANES..][..LANES];
                    sums.iter_mut().zip(column).for_each(|(s, k)| *s += q * k);
                }
                lanes.iter_mut().zip(sums).for_each(|(l, s)| *l = s * scale);
            }
            let row = &mut scores[..keys];
            let max = row.iter().fold(f32::NEG_INFINITY, |m, s| m.max(*s));
            row.iter_mut().for_each(|s| *s = exp(*s - max));
            let total: f32 = row.iter().sum();
            let inverse = 1.0 / total;
            row.iter_mut().for_each(|s| *s *= inverse);
            if let Some(weights) = weights.as_deref_mut() {
                weights[i * keys..][..keys].copy_from_slice(row);
            }
            out.fill(0.0);
            for (p, value) in row.iter().zip(self.v.chunks_exact(value_depth)) {
                out.iter_mut().zip(value).for_each(|(o, v)| *o += p * v);
            }
        }
    }
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
}
