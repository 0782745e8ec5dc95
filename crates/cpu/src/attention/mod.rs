//! Scaled dot-product attention, fused: for each item and each query row, the scores
//! against every key, their softmax and the weighted sum of the values are computed
//! while the row sits in cache, so the `[queries, keys]` score matrix is never written
//! out (only the softmax's output, when the backward pass needs it). Items run in
//! parallel; inside an item the keys are transposed once so that scores come from
//! 16-lane multiply-adds down the depth, a block of query rows at a time (each key and
//! value chunk loaded once for the block): on AVX-512, six rows by up to 64 keys with
//! the softmax in registers ([`avx512`]); elsewhere four rows by 16 keys in code the
//! compiler vectorizes ([`Tiles::Lanes`]). Rows are read and written
//! through strides, so a self-attention layer's heads come straight from its fused
//! projection and go straight to the output projection's layout.

use kiln_tensor::{AttentionDims, PackedAttentionDims};
use rayon::prelude::*;

use crate::gemm::{GemmKernel, gather_columns};
use crate::lanes::LANES;
use crate::memory::HostMemory;
use crate::simd::{VectorLoop, widest};
use crate::softmax_row::softmax_row;

#[cfg(target_arch = "x86_64")]
mod avx512;

/// `softmax(scale · q·kᵀ) · v` of every item, and the softmax's output when
/// `keep_weights`.
pub fn attention(
    mem: &HostMemory,
    operands: [&[f32]; 3],
    dims: AttentionDims,
    keep_weights: bool,
) -> (Vec<f32>, Option<Vec<f32>>) {
    attention_in(Tiles::detect(), mem, operands, dims, keep_weights)
}

/// [`attention`] computed with `tiles`.
fn attention_in(
    tiles: Tiles,
    mem: &HostMemory,
    [q, k, v]: [&[f32]; 3],
    dims: AttentionDims,
    keep_weights: bool,
) -> (Vec<f32>, Option<Vec<f32>>) {
    let AttentionDims { batch, queries, keys, depth, value_depth, scale } = dims;
    let mut out = mem.take(batch * queries * value_depth);
    let mut weights = keep_weights.then(|| mem.take(batch * queries * keys));
    let item = |workspace: &mut Workspace, b: usize, out: &mut [f32], weights: Option<&mut [f32]>| {
        widest(AttentionItem {
            q: Rows { data: q, start: b * queries * depth, stride: depth, width: depth },
            k: Rows { data: k, start: b * keys * depth, stride: depth, width: depth },
            v: Rows { data: v, start: b * keys * value_depth, stride: value_depth, width: value_depth },
            out: RowsMut { data: out, start: 0, stride: value_depth },
            weights,
            queries,
            keys,
            scale,
            tiles,
            workspace,
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
    let tiles = Tiles::detect();
    let mut out = mem.take(batch * len * width);
    let mut weights = keep_weights.then(|| mem.take(batch * heads * len * len));
    let sequence = |workspace: &mut Workspace, b: usize, out: &mut [f32], mut weights: Option<&mut [f32]>| {
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
                tiles,
                workspace: &mut *workspace,
            })
        }
    };
    for_each_item(&mut out, len * width, weights.as_deref_mut(), heads * len * len, sequence);
    (out, weights)
}

/// `f(workspace, i, out, weights)` in parallel for each item `i`: its `out_len`
/// outputs and, where weights are kept, its `weights_len` of them; each task's items
/// share one [`Workspace`].
fn for_each_item<F>(out: &mut [f32], out_len: usize, weights: Option<&mut [f32]>, weights_len: usize, f: F)
where
    F: Fn(&mut Workspace, usize, &mut [f32], Option<&mut [f32]>) + Sync,
{
    let items = out.par_chunks_mut(out_len.max(1)).enumerate();
    match weights {
        Some(weights) => items
            .zip(weights.par_chunks_mut(weights_len.max(1)))
            .for_each_init(Workspace::default, |workspace, ((i, out), weights)| {
                f(workspace, i, out, Some(weights))
            }),
        None => items.for_each_init(Workspace::default, |workspace, (i, out)| f(workspace, i, out, None)),
    }
}

/// The buffers an item's attention works in, kept from item to item (a sequence's
/// heads): the transposed keys, a block's scores and, where no weights are kept, its
/// softmax rows.
#[derive(Default)]
struct Workspace {
    keys_t: Vec<f32>,
    scores: Vec<f32>,
    probabilities: Vec<f32>,
}

/// `buffer`'s first `len` floats, growing it (with zeros) where it is shorter.
fn at_least(buffer: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buffer.len() < len {
        buffer.resize(len, 0.0);
    }
    &mut buffer[..len]
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

impl RowsMut<'_> {
    /// The `width` values of row `i`.
    #[inline(always)]
    fn row(&mut self, i: usize, width: usize) -> &mut [f32] {
        &mut self.data[self.start + i * self.stride..][..width]
    }
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
    tiles: Tiles,
    workspace: &'a mut Workspace,
}

impl VectorLoop for AttentionItem<'_> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let AttentionItem { q, k, v, mut out, mut weights, queries, keys, scale, tiles, workspace } = self;
        let depth = q.width;
        let padded = keys.next_multiple_of(LANES);
        // kᵀ with each depth's row padded by zeros to whole lanes.
        let keys_t = at_least(&mut workspace.keys_t, depth * padded);
        gather_columns(k.data, [k.start, k.stride], [depth, keys], padded, keys_t);
        for row in keys_t.chunks_exact_mut(padded) {
            row[keys..].fill(0.0);
        }
        let keys_t = KeysT { data: keys_t, padded };
        let most = tiles.most_rows();
        let scores = at_least(&mut workspace.scores, most * padded);
        // The block's softmax rows, where no weights are kept to hold them.
        let probabilities =
            at_least(&mut workspace.probabilities, if weights.is_some() { 0 } else { most * keys });
        let mut first = 0;
        while first < queries {
            let block = tiles.block(queries - first);
            let rows = match weights.as_deref_mut() {
                Some(weights) => &mut weights[first * keys..][..block * keys],
                None => &mut probabilities[..block * keys],
            };
            tiles.weights(block, ScoreSource { q, first, keys_t, scale }, scores, rows);
            tiles.values(block, rows, v, &mut out, first);
            first += block;
        }
    }
}

/// Which tiles compute an item's scores and weighted values.
#[derive(Clone, Copy, Debug)]
enum Tiles {
    /// The AVX-512 tiles ([`avx512`]): up to six query rows by up to 64 keys.
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// [`QUERY_BLOCK`] rows (or one) by one 16-lane chunk, in code the compiler
    /// vectorizes for the loop's instruction set.
    Lanes,
}

impl Tiles {
    /// The AVX-512 tiles where the GEMM kernel choice is AVX-512, else the lane tiles.
    fn detect() -> Self {
        match GemmKernel::detect() {
            #[cfg(target_arch = "x86_64")]
            GemmKernel::Avx512 => Tiles::Avx512,
            _ => Tiles::Lanes,
        }
    }

    /// Every kind of tile this CPU runs.
    #[cfg(test)]
    fn available() -> Vec<Tiles> {
        match Tiles::detect() {
            Tiles::Lanes => vec![Tiles::Lanes],
            #[cfg(target_arch = "x86_64")]
            Tiles::Avx512 => vec![Tiles::Lanes, Tiles::Avx512],
        }
    }

    /// Most query rows in one block.
    #[inline(always)]
    fn most_rows(self) -> usize {
        match self {
            #[cfg(target_arch = "x86_64")]
            Tiles::Avx512 => avx512::MAX_ROWS,
            Tiles::Lanes => QUERY_BLOCK,
        }
    }

    /// The rows of the next block when `left` query rows are left.
    #[inline(always)]
    fn block(self, left: usize) -> usize {
        match self {
            #[cfg(target_arch = "x86_64")]
            Tiles::Avx512 => left.min(avx512::MAX_ROWS),
            Tiles::Lanes if left >= QUERY_BLOCK => QUERY_BLOCK,
            Tiles::Lanes => 1,
        }
    }

    /// The softmax weights of the `block` query rows from `first` on into `rows`
    /// (`block` rows of the keys), their scaled scores going through `scores` (`block`
    /// rows of `keys_t.padded`).
    #[inline(always)]
    fn weights(self, block: usize, source: ScoreSource<'_>, scores: &mut [f32], rows: &mut [f32]) {
        let padded = source.keys_t.padded;
        let keys = rows.len() / block;
        match self {
            // SAFETY: `detect` chose these tiles where the CPU runs AVX-512F.
            #[cfg(target_arch = "x86_64")]
            Tiles::Avx512 => unsafe {
                avx512::block_scores(block, source, scores);
                return avx512::block_softmax(block, scores, padded, keys, rows);
            },
            Tiles::Lanes if block == QUERY_BLOCK => block_scores::<QUERY_BLOCK>(source, scores),
            Tiles::Lanes => block_scores::<1>(source, scores),
        }
        for (r, row) in rows.chunks_exact_mut(keys).enumerate() {
            softmax_row(row, &scores[r * padded..][..keys], false);
        }
    }

    /// The weighted values of the `block` softmax rows in `rows` into output rows
    /// `first..`.
    #[inline(always)]
    fn values(self, block: usize, rows: &[f32], v: Rows<'_>, out: &mut RowsMut<'_>, first: usize) {
        match self {
            // SAFETY: as in `weights`.
            #[cfg(target_arch = "x86_64")]
            Tiles::Avx512 => unsafe { avx512::block_values(block, rows, v, out, first) },
            Tiles::Lanes if block == QUERY_BLOCK => block_values::<QUERY_BLOCK>(rows, v, out, first),
            Tiles::Lanes => block_values::<1>(rows, v, out, first),
        }
    }
}

/// Query rows whose scores and weighted values are computed together: each key or
/// value chunk loaded serves all of them, and their sums are independent chains (four
/// 16-lane accumulators, which the compiler keeps in registers).
const QUERY_BLOCK: usize = 4;

/// An item's keys transposed: depth `d`'s row of `padded` lanes (zeros past the keys)
/// at `data[d·padded..]`.
#[derive(Clone, Copy)]
struct KeysT<'a> {
    data: &'a [f32],
    padded: usize,
}

/// What a block of query rows' scores come from: the queries (the block starting at
/// row `first`), the item's transposed keys and the scale.
#[derive(Clone, Copy)]
struct ScoreSource<'a> {
    q: Rows<'a>,
    first: usize,
    keys_t: KeysT<'a>,
    scale: f32,
}

/// `scale · q·kᵀ` of the `Q` query rows from `first` on, row `r` into
/// `scores[r·padded..]`, one 16-lane chunk of keys at a time.
#[inline(always)]
fn block_scores<const Q: usize>(source: ScoreSource<'_>, scores: &mut [f32]) {
    let ScoreSource { q, first, keys_t, scale } = source;
    let queries: [&[f32]; Q] = std::array::from_fn(|r| q.row(first + r));
    for chunk in 0..keys_t.padded / LANES {
        let sums = dot_column::<Q>(queries, keys_t, chunk);
        for (r, sums) in sums.iter().enumerate() {
            let lanes = &mut scores[r * keys_t.padded + chunk * LANES..][..LANES];
            lanes.iter_mut().zip(sums).for_each(|(l, s)| *l = s * scale);
        }
    }
}

/// `q·kᵀ` of `Q` query rows for the 16 keys of chunk `chunk`.
#[inline(always)]
fn dot_column<const Q: usize>(queries: [&[f32]; Q], keys_t: KeysT<'_>, chunk: usize) -> [[f32; LANES]; Q] {
    let depth = queries[0].len();
    let queries: [&[f32]; Q] = std::array::from_fn(|r| &queries[r][..depth]);
    let mut sums = [[0.0f32; LANES]; Q];
    for d in 0..depth {
        let start = d * keys_t.padded + chunk * LANES;
        let column: &[f32; LANES] = keys_t.data[start..][..LANES].try_into().expect("16 lanes");
        for (query, sum) in queries.iter().zip(sums.iter_mut()) {
            add_scaled(sum, query[d], column);
        }
    }
    sums
}

/// `sum += factor · values`, lane by lane in fused multiply-adds.
#[inline(always)]
fn add_scaled(sum: &mut [f32; LANES], factor: f32, values: &[f32; LANES]) {
    for lane in 0..LANES {
        sum[lane] = factor.mul_add(values[lane], sum[lane]);
    }
}

/// `out[first + r] = Σⱼ rows[r][j] · v[j]` for the `Q` softmax rows in `rows`: 16
/// output lanes at a time, then one lane at a time.
#[inline(always)]
fn block_values<const Q: usize>(rows: &[f32], v: Rows<'_>, out: &mut RowsMut<'_>, first: usize) {
    let keys = rows.len() / Q;
    let rows: [&[f32]; Q] = std::array::from_fn(|r| &rows[r * keys..][..keys]);
    let width = v.width;
    let mut lane = 0;
    while lane + LANES <= width {
        let sums = value_sums::<Q>(rows, v, lane);
        for (r, sums) in sums.iter().enumerate() {
            out.row(first + r, width)[lane..][..LANES].copy_from_slice(sums);
        }
        lane += LANES;
    }
    for (r, row) in rows.iter().enumerate() {
        for e in lane..width {
            out.row(first + r, width)[e] = row.iter().enumerate().map(|(j, p)| p * v.row(j)[e]).sum();
        }
    }
}

/// `Σⱼ rows[r][j] · v[j][first..first + 16]` for each of the `Q` rows.
#[inline(always)]
fn value_sums<const Q: usize>(rows: [&[f32]; Q], v: Rows<'_>, first: usize) -> [[f32; LANES]; Q] {
    let keys = rows[0].len();
    let rows: [&[f32]; Q] = std::array::from_fn(|r| &rows[r][..keys]);
    let mut sums = [[0.0f32; LANES]; Q];
    for j in 0..keys {
        let values: &[f32; LANES] = v.row(j)[first..][..LANES].try_into().expect("16 lanes");
        for (row, sum) in rows.iter().zip(sums.iter_mut()) {
            add_scaled(sum, row[j], values);
        }
    }
    sums
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
        // Blocks of 4 or 6 rows with one left over and less; one to five key chunks
        // (a score tile and a second one of one chunk); value rows of a masked chunk,
        // two whole ones, and two plus a masked one; keys and values of whole chunks.
        let sizes = [
            (1, 1, 1, 1, 1),
            (3, 5, 17, 4, 3),
            (2, 50, 50, 32, 32),
            (2, 7, 33, 19, 40),
            (1, 13, 70, 9, 33),
            (2, 9, 32, 8, 16),
        ];
        for ((batch, queries, keys, depth, value_depth), tiles) in
            sizes.into_iter().flat_map(|size| Tiles::available().into_iter().map(move |tiles| (size, tiles)))
        {
            let dims = AttentionDims { batch, queries, keys, depth, value_depth, scale: 0.3 };
            let q: Vec<f32> = (0..batch * queries * depth).map(|i| value(1, i)).collect();
            let k: Vec<f32> = (0..batch * keys * depth).map(|i| value(2, i)).collect();
            let v: Vec<f32> = (0..batch * keys * value_depth).map(|i| value(3, i)).collect();
            let (out, weights) = attention_in(tiles, &HostMemory::default(), [&q, &k, &v], dims, true);
            let out_kept = out.clone();
            let (want_out, want_weights) = reference(&q, &k, &v, dims);
            for (name, got, want) in [("output", out, want_out), ("weights", weights.unwrap(), want_weights)]
            {
                assert_eq!(got.len(), want.len(), "{name} of {dims:?} with {tiles:?}");
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (*g as f64 - w).abs() < 1e-5 * (1.0 + w.abs()),
                        "{name}[{i}] of {dims:?} with {tiles:?}: {g} vs {w}"
                    );
                }
            }
            let (alone, none) = attention_in(tiles, &HostMemory::default(), [&q, &k, &v], dims, false);
            assert!(none.is_none());
            assert_eq!(alone, out_kept, "the output without the weights kept, {dims:?} with {tiles:?}");
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
