//! Axis-wise kernels on the `[outer, len, inner]` view of a tensor: sum, max with
//! argmax and its gradient, softmax/log-softmax and their gradients, and the fused
//! softmax cross-entropy.

use kiln_tensor::AxisSplit;
use kiln_tensor::fast_math::exp_bounded;
use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use crate::gemm::GemmKernel;
use crate::gemm::gather_columns;
use crate::lanes::{LANES, horizontal_sum};
use crate::memory::HostMemory;
use crate::simd::{VectorLoop, widest};
#[cfg(target_arch = "x86_64")]
use crate::softmax_avx512::{MAX_LEN, ShortRows, softmax_short_rows, softmax_short_rows_backward};
use crate::softmax_row::{softmax_row, softmax_row_backward};

/// Elements a parallel task reads at least: small blocks (a softmax row of 50) are
/// grouped so that scheduling costs nothing.
const TASK_ELEMENTS: usize = 1 << 14;

/// How many `[len, inner]` blocks of `split` one parallel task takes.
fn blocks_per_task(split: AxisSplit) -> usize {
    (TASK_ELEMENTS / (split.len * split.inner).max(1)).max(1)
}

/// Runs `f(o, i, read(l), …)` for each `(o, i)` lane of the split, in parallel over
/// groups of `o`, writing one output per lane into `out[o·inner + i]`.
fn per_lane<T: Send + Copy + Default>(
    split: AxisSplit,
    f: impl Fn(&dyn Fn(usize) -> usize) -> T + Sync,
) -> Vec<T> {
    let AxisSplit { outer, len, inner } = split;
    let inner = inner.max(1);
    let per_task = blocks_per_task(split);
    let mut out = vec![T::default(); outer * inner];
    out.par_chunks_mut(inner * per_task).enumerate().for_each(|(task, lanes)| {
        for (j, slot) in lanes.iter_mut().enumerate() {
            let (o, i) = (task * per_task + j / inner, j % inner);
            let index = move |l: usize| (o * len + l) * inner + i;
            *slot = f(&index);
        }
    });
    out
}

/// The sum of contiguous `values` in sixteen running sums (element `i` into sum
/// `i % 16`) added up in a fixed order at the end: the additions vectorize instead of
/// waiting on each other, and every run gives the same result.
#[inline(always)]
pub fn sum_contiguous(values: &[f32]) -> f32 {
    sum_pairs(values, values, |v, _| v)
}

/// `Σ f(a[i], b[i])` over equally long contiguous slices, in [`sum_contiguous`]'s
/// sixteen running sums and fixed order.
#[inline(always)]
pub(crate) fn sum_pairs(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut sums = [0.0f32; LANES];
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (a_rest, b_rest) = (a_chunks.remainder(), b_chunks.remainder());
    for (x, y) in a_chunks.zip(b_chunks) {
        sums.iter_mut().zip(x.iter().zip(y)).for_each(|(sum, (x, y))| *sum += f(*x, *y));
    }
    sums.iter_mut().zip(a_rest.iter().zip(b_rest)).for_each(|(sum, (x, y))| *sum += f(*x, *y));
    horizontal_sum(sums)
}

/// Rows shorter than this are each summed one element after another (sixteen rows side
/// by side, [`sum_short_rows`]): sixteen running sums within a row would cost more
/// than they save.
const SHORT_ROW: usize = 64;

/// Contiguous rows longer than this are summed in pieces of this many values in
/// parallel (a loss's full sum is one row), the pieces' sums then added in order: the
/// same bits on any number of threads. Summing a 128×50×128 tensor took 0.095 ms on
/// one thread, 0.032 ms in pieces (2 threads, Zen 4).
const ROW_PIECE: usize = 1 << 15;

/// Sum over the middle axis: long contiguous rows (`inner` 1) in [`sum_contiguous`]'s
/// running sums (the longest in [`ROW_PIECE`]s), short ones in order, otherwise whole
/// rows of `inner` lanes added in order of `l`.
pub fn sum_axis(x: &[f32], split: AxisSplit) -> Vec<f32> {
    let AxisSplit { outer, len, inner } = split;
    let per_task = blocks_per_task(split);
    let mut out = vec![0.0; outer * inner];
    if len == 0 || inner == 0 {
        return out;
    }
    if inner == 1 && len > ROW_PIECE {
        for (sum, row) in out.iter_mut().zip(x.chunks(len)) {
            let pieces: Vec<f32> =
                row.par_chunks(ROW_PIECE).map(|piece| widest(|| sum_contiguous(piece))).collect();
            *sum = pieces.iter().sum();
        }
        return out;
    }
    out.par_chunks_mut(inner * per_task).zip(x.par_chunks(len * inner * per_task)).for_each(|(sums, x)| {
        if inner == 1 && len < SHORT_ROW {
            return sum_short_rows(x, len, sums);
        }
        widest(|| {
            for (sums, block) in sums.chunks_mut(inner).zip(x.chunks(len * inner)) {
                if inner == 1 {
                    sums[0] = sum_contiguous(block);
                } else {
                    for row in block.chunks(inner) {
                        sums.iter_mut().zip(row).for_each(|(sum, v)| *sum += v);
                    }
                }
            }
        })
    });
    out
}

/// `sums[o] = Σₗ x[o·len + l]` for rows shorter than [`SHORT_ROW`] (a global average
/// pool's 4×4 planes), sixteen rows at a time: transposed into a block whose row `l`
/// holds value `l` of each of the sixteen, then added row by row, one lane per row.
/// Each sum adds its values in order, as one after another would, sixteen sums to a
/// vector addition.
fn sum_short_rows(x: &[f32], len: usize, sums: &mut [f32]) {
    let mut columns = [0.0f32; LANES * SHORT_ROW];
    let whole = sums.len() / LANES * LANES;
    for (group, out) in sums[..whole].chunks_exact_mut(LANES).enumerate() {
        gather_columns(x, [group * LANES * len, len], [len, LANES], LANES, &mut columns);
        widest(|| {
            let mut lanes = [0.0f32; LANES];
            for row in columns[..len * LANES].chunks_exact(LANES) {
                lanes.iter_mut().zip(row).for_each(|(sum, v)| *sum += v);
            }
            out.copy_from_slice(&lanes);
        });
    }
    for (o, sum) in sums.iter_mut().enumerate().skip(whole) {
        *sum = x[o * len..][..len].iter().sum();
    }
}

/// Maximum over the middle axis and the position of its first occurrence.
pub fn max_axis(x: &[f32], split: AxisSplit) -> (Vec<f32>, Vec<i32>) {
    let best: Vec<(f32, i32)> = per_lane(split, |at| {
        let mut best = (f32::NEG_INFINITY, 0);
        for l in 0..split.len {
            if x[at(l)] > best.0 || l == 0 {
                best = (x[at(l)], l as i32);
            }
        }
        best
    });
    best.into_iter().unzip()
}

/// Gradient of `max_axis`: each lane's gradient placed at its argmax.
pub fn max_axis_backward(mem: &HostMemory, grad: &[f32], argmax: &[i32], split: AxisSplit) -> Vec<f32> {
    let AxisSplit { outer, len, inner } = split;
    let mut out = mem.zeroed(outer * len * inner);
    out.par_chunks_mut((len * inner).max(1)).enumerate().for_each(|(o, block)| {
        for i in 0..inner {
            let lane = o * inner + i;
            block[argmax[lane] as usize * inner + i] = grad[lane];
        }
    });
    out
}

/// Whether a softmax over `split` runs its rows in AVX-512 registers: rows along the
/// last axis, of 1 to [`MAX_LEN`] values, on a CPU whose kernels are AVX-512.
#[cfg(target_arch = "x86_64")]
fn short_rows_in_registers(split: AxisSplit) -> bool {
    split.inner == 1 && (1..=MAX_LEN).contains(&split.len) && GemmKernel::detect() == GemmKernel::Avx512
}

/// Softmax (or log-softmax) over the middle axis, with the maximum subtracted first.
pub fn softmax(mem: &HostMemory, x: &[f32], split: AxisSplit, log: bool) -> Vec<f32> {
    let AxisSplit { len, inner, .. } = split;
    let block = (len * inner).max(1);
    let per_task = block * blocks_per_task(split);
    let mut out = mem.take(x.len());
    #[cfg(target_arch = "x86_64")]
    if short_rows_in_registers(split) {
        out.par_chunks_mut(per_task).zip(x.par_chunks(per_task)).for_each(|(out, x)| {
            let rows = ShortRows { input: x, input_stride: len, len, out_stride: len };
            // SAFETY: `detect` names AVX-512 only where the CPU runs it.
            unsafe { softmax_short_rows(x.len() / len, rows, out, log) }
        });
        return out;
    }
    out.par_chunks_mut(per_task)
        .zip(x.par_chunks(per_task))
        .for_each(|(out, x)| widest(SoftmaxBlocks { out, x, block, inner, log }));
    out
}

/// Consecutive `[len, inner]` blocks of a softmax, compiled whole for each instruction
/// set.
struct SoftmaxBlocks<'a> {
    out: &'a mut [f32],
    x: &'a [f32],
    block: usize,
    inner: usize,
    log: bool,
}

impl VectorLoop for SoftmaxBlocks<'_> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        for (out, x) in self.out.chunks_mut(self.block).zip(self.x.chunks(self.block)) {
            if self.inner == 1 {
                softmax_row(out, x, self.log);
            } else {
                softmax_columns(out, x, self.inner, self.log);
            }
        }
    }
}

/// Softmax down the columns of a `[len, inner]` block: each pass runs along rows of
/// `inner` contiguous lanes.
#[inline(always)]
fn softmax_columns(out: &mut [f32], x: &[f32], inner: usize, log: bool) {
    let mut max = vec![f32::NEG_INFINITY; inner];
    for row in x.chunks(inner) {
        max.iter_mut().zip(row).for_each(|(m, v)| *m = m.max(*v));
    }
    let mut sum = vec![0.0f32; inner];
    for (out, row) in out.chunks_mut(inner).zip(x.chunks(inner)) {
        for ((o, v), (m, s)) in out.iter_mut().zip(row).zip(max.iter().zip(sum.iter_mut())) {
            *o = exp_bounded(v - m);
            *s += *o;
        }
    }
    if log {
        let log_sum: Vec<f32> = max.iter().zip(&sum).map(|(m, s)| m + s.ln()).collect();
        for (out, row) in out.chunks_mut(inner).zip(x.chunks(inner)) {
            out.iter_mut().zip(row).zip(&log_sum).for_each(|((o, v), l)| *o = v - l);
        }
    } else {
        let scale: Vec<f32> = sum.iter().map(|s| 1.0 / s).collect();
        for out in out.chunks_mut(inner) {
            out.iter_mut().zip(&scale).for_each(|(o, s)| *o *= s);
        }
    }
}

/// Gradient of softmax given its output `y`: `y·(g − Σ g·y)`; of log-softmax:
/// `g − e^y · Σ g`.
pub fn softmax_backward(mem: &HostMemory, y: &[f32], grad: &[f32], split: AxisSplit, log: bool) -> Vec<f32> {
    let AxisSplit { len, inner, .. } = split;
    let block = (len * inner).max(1);
    let per_task = block * blocks_per_task(split);
    let mut out = mem.take(y.len());
    let tasks = out.par_chunks_mut(per_task).zip(y.par_chunks(per_task).zip(grad.par_chunks(per_task)));
    #[cfg(target_arch = "x86_64")]
    if short_rows_in_registers(split) {
        // SAFETY: `detect` names AVX-512 only where the CPU runs it.
        tasks.for_each(|(out, (y, grad))| unsafe { softmax_short_rows_backward(y, grad, len, out, log) });
        return out;
    }
    tasks.for_each(|(out, (y, grad))| {
        widest(SoftmaxBackwardBlocks { out, y, grad, block, inner: inner.max(1), log })
    });
    out
}

/// Consecutive blocks of a softmax gradient, compiled whole for each instruction set.
struct SoftmaxBackwardBlocks<'a> {
    out: &'a mut [f32],
    y: &'a [f32],
    grad: &'a [f32],
    block: usize,
    inner: usize,
    log: bool,
}

impl VectorLoop for SoftmaxBackwardBlocks<'_> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let blocks = self.y.chunks(self.block).zip(self.grad.chunks(self.block));
        for (out, (y, grad)) in self.out.chunks_mut(self.block).zip(blocks) {
            softmax_block_backward(out, y, grad, self.inner, self.log);
        }
    }
}

/// [`softmax_backward`] of one `[len, inner]` block: the per-lane totals (`Σ g·y`, or
/// `Σ g` for log-softmax) along rows of `inner` lanes, then the gradient.
#[inline(always)]
fn softmax_block_backward(out: &mut [f32], y: &[f32], grad: &[f32], inner: usize, log: bool) {
    if inner == 1 {
        if softmax_row_backward(out, y, grad, log) {
            return;
        }
        let total = if log { sum_contiguous(grad) } else { sum_pairs(grad, y, |g, y| g * y) };
        for ((o, g), y) in out.iter_mut().zip(grad).zip(y) {
            *o = if log { g - exp_bounded(*y) * total } else { y * (g - total) };
        }
        return;
    }
    let mut totals = vec![0.0f32; inner];
    for (g, y) in grad.chunks(inner).zip(y.chunks(inner)) {
        for (t, (g, y)) in totals.iter_mut().zip(g.iter().zip(y)) {
            *t += if log { *g } else { g * y };
        }
    }
    for (out, (g, y)) in out.chunks_mut(inner).zip(grad.chunks(inner).zip(y.chunks(inner))) {
        for ((o, t), (g, y)) in out.iter_mut().zip(&totals).zip(g.iter().zip(y)) {
            *o = if log { g - exp_bounded(*y) * t } else { y * (g - t) };
        }
    }
}

/// Checks a label and returns it as an index.
fn class_index(labels: &[i32], row: usize, classes: usize) -> usize {
    let label = labels[row];
    assert!(
        (0..classes as i32).contains(&label),
        "cross_entropy: label {label} of example {row} is outside 0..{classes}"
    );
    label as usize
}

/// Mean softmax cross-entropy and the softmax probabilities.
pub fn cross_entropy(
    mem: &HostMemory,
    logits: &[f32],
    labels: &[i32],
    n: usize,
    classes: usize,
) -> (f32, Vec<f32>) {
    let split = AxisSplit { outer: n, len: classes, inner: 1 };
    let log_probs = softmax(mem, logits, split, true);
    let total: f64 =
        (0..n).map(|row| -(log_probs[row * classes + class_index(labels, row, classes)] as f64)).sum();
    let probs = log_probs.iter().map(|lp| lp.exp()).collect();
    ((total / n as f64) as f32, probs)
}

/// Gradient of the mean cross-entropy for the logits.
pub fn cross_entropy_backward(
    probs: &[f32],
    labels: &[i32],
    grad: f32,
    n: usize,
    classes: usize,
) -> Vec<f32> {
    let scale = grad / n as f32;
    let mut out: Vec<f32> = probs.iter().map(|p| p * scale).collect();
    for row in 0..n {
        out[row * classes + class_index(labels, row, classes)] -= scale;
    }
    out
}

/// `(x − mean)·rstd` along the middle axis, and each lane's `rstd = 1/√(var + eps)`.
pub fn normalize(mem: &HostMemory, x: &[f32], split: AxisSplit, eps: f32) -> (Vec<f32>, Vec<f32>) {
    let AxisSplit { outer, len, inner } = split;
    let mut out = mem.take(x.len());
    let mut rstd = mem.take(outer * inner);
    if out.is_empty() || rstd.is_empty() {
        return (out, rstd);
    }
    let blocks = blocks_per_task(split);
    let (block, lanes) = (len * inner, inner);
    out.par_chunks_mut(block * blocks)
        .zip(rstd.par_chunks_mut(lanes * blocks).zip(x.par_chunks(block * blocks)))
        .for_each(|(out, (rstd, x))| widest(NormalizeBlocks { out, rstd, x, len, inner, eps }));
    (out, rstd)
}

/// Consecutive `[len, inner]` blocks of [`normalize`], compiled whole for each
/// instruction set.
struct NormalizeBlocks<'a> {
    out: &'a mut [f32],
    rstd: &'a mut [f32],
    x: &'a [f32],
    len: usize,
    inner: usize,
    eps: f32,
}

impl VectorLoop for NormalizeBlocks<'_> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let Self { out, rstd, x, len, inner, eps } = self;
        let n = len as f32;
        for ((block, lanes), lane_rstd) in
            out.chunks_mut(len * inner).zip(x.chunks(len * inner)).zip(rstd.chunks_mut(inner))
        {
            if inner == 1 {
                // A lane along the last axis is contiguous: sum it in vectorized lanes.
                let mean = sum_contiguous(lanes) / n;
                let var = sum_pairs(lanes, lanes, |v, _| (v - mean) * (v - mean)) / n;
                let r = 1.0 / (var + eps).sqrt();
                lane_rstd[0] = r;
                block.iter_mut().zip(lanes).for_each(|(o, v)| *o = (v - mean) * r);
                continue;
            }
            for (i, r) in lane_rstd.iter_mut().enumerate() {
                let at = |l: usize| l * inner + i;
                let mean = (0..len).map(|l| lanes[at(l)]).sum::<f32>() / n;
                let var = (0..len).map(|l| (lanes[at(l)] - mean).powi(2)).sum::<f32>() / n;
                *r = 1.0 / (var + eps).sqrt();
                for l in 0..len {
                    block[at(l)] = (lanes[at(l)] - mean) * *r;
                }
            }
        }
    }
}

/// Gradient of [`normalize`]: `rstd·(g − mean(g) − y·mean(g·y))` per lane.
pub fn normalize_backward(
    mem: &HostMemory,
    y: &[f32],
    rstd: &[f32],
    grad: &[f32],
    split: AxisSplit,
) -> Vec<f32> {
    let AxisSplit { len, inner, .. } = split;
    let mut out = mem.take(y.len());
    if out.is_empty() {
        return out;
    }
    let blocks = blocks_per_task(split);
    let block = len * inner;
    out.par_chunks_mut(block * blocks)
        .zip(y.par_chunks(block * blocks).zip(grad.par_chunks(block * blocks)))
        .zip(rstd.par_chunks(inner * blocks))
        .for_each(|((out, (y, grad)), rstd)| {
            widest(NormalizeBackwardBlocks { out, y, grad, rstd, len, inner })
        });
    out
}

/// Consecutive blocks of [`normalize_backward`], compiled whole for each instruction
/// set.
struct NormalizeBackwardBlocks<'a> {
    out: &'a mut [f32],
    y: &'a [f32],
    grad: &'a [f32],
    rstd: &'a [f32],
    len: usize,
    inner: usize,
}

impl VectorLoop for NormalizeBackwardBlocks<'_> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let Self { out, y, grad, rstd, len, inner } = self;
        let n = len as f32;
        let block = len * inner;
        let blocks =
            out.chunks_mut(block).zip(y.chunks(block).zip(grad.chunks(block))).zip(rstd.chunks(inner));
        for ((out, (y, grad)), rstd) in blocks {
            if inner == 1 {
                let (mean_g, mean_gy) = (sum_contiguous(grad) / n, sum_pairs(grad, y, |g, y| g * y) / n);
                let r = rstd[0];
                for ((o, g), y) in out.iter_mut().zip(grad).zip(y) {
                    *o = r * (g - mean_g - y * mean_gy);
                }
                continue;
            }
            for (i, r) in rstd.iter().enumerate() {
                let at = |l: usize| l * inner + i;
                let mean_g = (0..len).map(|l| grad[at(l)]).sum::<f32>() / n;
                let mean_gy = (0..len).map(|l| grad[at(l)] * y[at(l)]).sum::<f32>() / n;
                for l in 0..len {
                    out[at(l)] = r * (grad[at(l)] - mean_g - y[at(l)] * mean_gy);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_values::values;

    /// Short rows summed sixteen at a time equal each row added one value after
    /// another, bit for bit: whole groups of sixteen and a ragged rest, rows of one
    /// value up to the longest short row, in one parallel task and in several.
    #[test]
    fn short_rows_sum_in_order() {
        for (outer, len) in [(5, 1), (16, 1), (37, 3), (65536, 16), (40, 16), (33, SHORT_ROW - 1)] {
            let x = values(outer * len, 7 + len as u64);
            let sums = sum_axis(&x, AxisSplit { outer, len, inner: 1 });
            let want: Vec<f32> = x.chunks(len).map(|row| row.iter().sum()).collect();
            let bits = |v: &[f32]| v.iter().map(|s| s.to_bits()).collect::<Vec<_>>();
            assert!(bits(&sums) == bits(&want), "{outer} rows of {len}");
        }
    }

    /// Rows longer than a piece are summed piece by piece, the pieces' sums added in
    /// order: the same bits on one thread and on three, close to the exact sum.
    #[test]
    fn long_rows_sum_in_pieces_the_same_on_any_number_of_threads() {
        for (outer, len) in [(1, ROW_PIECE + 1), (2, 3 * ROW_PIECE + 17)] {
            let x = values(outer * len, 11);
            let split = AxisSplit { outer, len, inner: 1 };
            let on_threads = |threads: usize| {
                let pool =
                    rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a thread pool");
                pool.install(|| sum_axis(&x, split))
            };
            let (one, three) = (on_threads(1), on_threads(3));
            for (o, row) in x.chunks(len).enumerate() {
                let exact: f64 = row.iter().map(|&v| v as f64).sum();
                let magnitude: f64 = row.iter().map(|&v| (v as f64).abs()).sum();
                assert_eq!(one[o].to_bits(), three[o].to_bits(), "{outer} rows of {len}: row {o}");
                assert!((one[o] as f64 - exact).abs() <= 1e-6 * magnitude, "row {o}: {} vs {exact}", one[o]);
            }
        }
    }
}
