//! Axis-wise kernels on the `[outer, len, inner]` view of a tensor: sum, max with
//! argmax and its gradient, softmax/log-softmax and their gradients, and the fused
//! softmax cross-entropy.

use kiln_tensor::AxisSplit;
use rayon::prelude::*;

use crate::memory::HostMemory;

/// Runs `f(o, i, read(l), …)` for each `(o, i)` lane of the split, in parallel over `o`,
/// writing one output per lane into `out[o·inner + i]`.
fn per_lane<T: Send + Copy + Default>(
    split: AxisSplit,
    f: impl Fn(&dyn Fn(usize) -> usize) -> T + Sync,
) -> Vec<T> {
    let AxisSplit { outer, len, inner } = split;
    let mut out = vec![T::default(); outer * inner];
    out.par_chunks_mut(inner.max(1)).enumerate().for_each(|(o, lanes)| {
        for (i, slot) in lanes.iter_mut().enumerate() {
            let index = move |l: usize| (o * len + l) * inner + i;
            *slot = f(&index);
        }
    });
    out
}

/// The sum of contiguous `values` in sixteen running sums (element `i` into sum
/// `i % 16`) added up in a fixed order at the end: the additions vectorize instead of
/// waiting on each other, and every run gives the same result.
pub fn sum_contiguous(values: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut sums = [0.0f32; LANES];
    let chunks = values.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        sums.iter_mut().zip(chunk).for_each(|(sum, v)| *sum += v);
    }
    sums.iter_mut().zip(rest).for_each(|(sum, v)| *sum += v);
    sums.iter().sum()
}

/// `Σ value(i)` for `i < n` in sixteen running sums (`i % 16`), added up in a fixed
/// order: the additions vectorize where `value` reads contiguous memory, and every run
/// gives the same result.
fn sum_by_lanes(n: usize, value: impl Fn(usize) -> f32) -> f32 {
    const LANES: usize = 16;
    let mut sums = [0.0f32; LANES];
    let full = n / LANES * LANES;
    for base in (0..full).step_by(LANES) {
        for (k, sum) in sums.iter_mut().enumerate() {
            *sum += value(base + k);
        }
    }
    for (sum, i) in sums.iter_mut().zip(full..n) {
        *sum += value(i);
    }
    sums.iter().sum()
}

/// Sum over the middle axis.
pub fn sum_axis(x: &[f32], split: AxisSplit) -> Vec<f32> {
    per_lane(split, |at| (0..split.len).map(|l| x[at(l)]).sum())
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

/// Softmax (or log-softmax) over the middle axis, with the maximum subtracted first.
pub fn softmax(mem: &HostMemory, x: &[f32], split: AxisSplit, log: bool) -> Vec<f32> {
    let AxisSplit { len, inner, .. } = split;
    let mut out = mem.take(x.len());
    out.par_chunks_mut((len * inner).max(1)).enumerate().for_each(|(o, block)| {
        let base = o * len * inner;
        for i in 0..inner {
            let at = |l: usize| l * inner + i;
            let max = (0..len).map(|l| x[base + at(l)]).fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = (0..len).map(|l| (x[base + at(l)] - max).exp()).sum();
            for l in 0..len {
                let shifted = x[base + at(l)] - max;
                block[at(l)] = if log { shifted - sum.ln() } else { shifted.exp() / sum };
            }
        }
    });
    out
}

/// Gradient of softmax given its output `y`: `y·(g − Σ g·y)`; of log-softmax:
/// `g − e^y · Σ g`.
pub fn softmax_backward(mem: &HostMemory, y: &[f32], grad: &[f32], split: AxisSplit, log: bool) -> Vec<f32> {
    let AxisSplit { len, inner, .. } = split;
    let mut out = mem.take(y.len());
    out.par_chunks_mut((len * inner).max(1)).enumerate().for_each(|(o, block)| {
        let base = o * len * inner;
        for i in 0..inner {
            let at = |l: usize| base + l * inner + i;
            if log {
                let total: f32 = (0..len).map(|l| grad[at(l)]).sum();
                for l in 0..len {
                    block[l * inner + i] = grad[at(l)] - y[at(l)].exp() * total;
                }
            } else {
                let dot: f32 = (0..len).map(|l| grad[at(l)] * y[at(l)]).sum();
                for l in 0..len {
                    block[l * inner + i] = y[at(l)] * (grad[at(l)] - dot);
                }
            }
        }
    });
    out
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
    out.par_chunks_mut((len * inner).max(1)).zip(rstd.par_chunks_mut(inner.max(1))).enumerate().for_each(
        |(o, (block, lane_rstd))| {
            let lanes = &x[o * len * inner..(o + 1) * len * inner];
            for (i, r) in lane_rstd.iter_mut().enumerate() {
                let at = |l: usize| l * inner + i;
                let mean = sum_by_lanes(len, |l| lanes[at(l)]) / len as f32;
                let var = sum_by_lanes(len, |l| (lanes[at(l)] - mean).powi(2)) / len as f32;
                *r = 1.0 / (var + eps).sqrt();
                for l in 0..len {
                    block[at(l)] = (lanes[at(l)] - mean) * *r;
                }
            }
        },
    );
    (out, rstd)
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
    out.par_chunks_mut((len * inner).max(1)).enumerate().for_each(|(o, block)| {
        let base = o * len * inner;
        for i in 0..inner {
            let at = |l: usize| l * inner + i;
            let mean_g = sum_by_lanes(len, |l| grad[base + at(l)]) / len as f32;
            let mean_gy = sum_by_lanes(len, |l| grad[base + at(l)] * y[base + at(l)]) / len as f32;
            let r = rstd[o * inner + i];
            for l in 0..len {
                block[at(l)] = r * (grad[base + at(l)] - mean_g - y[base + at(l)] * mean_gy);
            }
        }
    });
    out
}
