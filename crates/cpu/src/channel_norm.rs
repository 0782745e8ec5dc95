//! Batch normalization on the CPU: per-channel statistics of `[batch, channels, inner]`
//! (each channel's values are `batch` runs of `inner` contiguous floats), then one pass
//! writing `x·a[c] + b[c]`; the backward pass is two per-channel sums and one pass
//! writing `g·a[c] + x·b[c] + c[c]`.

use kiln_tensor::AxisSplit;
use rayon::prelude::*;

use crate::memory::HostMemory;
use crate::reduce::sum_pairs;
use crate::simd::widest;

/// Floats a parallel task of the writing passes covers at least.
const TASK_ELEMENTS: usize = 1 << 14;

/// `Σ f(a, b)` over channel `c`'s values of two `[outer, len, inner]` arrays, in f64
/// across the runs.
fn channel_sum(a: &[f32], b: &[f32], split: AxisSplit, c: usize, f: impl Fn(f32, f32) -> f32 + Copy) -> f64 {
    let AxisSplit { outer, len, inner } = split;
    widest(|| {
        (0..outer)
            .map(|n| {
                let at = (n * len + c) * inner;
                sum_pairs(&a[at..at + inner], &b[at..at + inner], f) as f64
            })
            .sum()
    })
}

/// Writes `out = f(c, i)` for each run `i` of `inner` values of channel `c`, in
/// parallel over groups of runs.
fn per_run(out: &mut [f32], split: AxisSplit, f: impl Fn(&mut [f32], usize, usize) + Sync) {
    let AxisSplit { len, inner, .. } = split;
    let runs_per_task = (TASK_ELEMENTS / inner.max(1)).max(1);
    out.par_chunks_mut(runs_per_task * inner).enumerate().for_each(|(task, chunk)| {
        widest(|| {
            for (r, run) in chunk.chunks_mut(inner).enumerate() {
                let run_index = task * runs_per_task + r;
                f(run, run_index % len, run_index * inner);
            }
        })
    });
}

/// [`kiln_tensor::Backend::channel_norm`]: the output, the mean and the variance.
pub fn channel_norm(
    mem: &HostMemory,
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    given: Option<(&[f32], &[f32])>,
    split: AxisSplit,
    eps: f32,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let channels = split.len;
    let count = (split.outer * split.inner) as f64;
    let (mean, var): (Vec<f32>, Vec<f32>) = match given {
        Some((mean, var)) => (mean.to_vec(), var.to_vec()),
        None => (0..channels)
            .into_par_iter()
            .map(|c| {
                let mean = (channel_sum(x, x, split, c, |v, _| v) / count) as f32;
                let var = channel_sum(x, x, split, c, |v, _| (v - mean) * (v - mean)) / count;
                (mean, var as f32)
            })
            .unzip(),
    };
    // y = (x − mean)·rstd·w + b = x·scale + shift.
    let scale: Vec<f32> = (0..channels).map(|c| weight[c] / (var[c] + eps).sqrt()).collect();
    let shift: Vec<f32> = (0..channels).map(|c| bias[c] - mean[c] * scale[c]).collect();
    let mut out = mem.take(x.len());
    per_run(&mut out, split, |run, c, at| {
        let (a, b, len) = (scale[c], shift[c], run.len());
        run.iter_mut().zip(&x[at..at + len]).for_each(|(o, v)| *o = v * a + b);
    });
    (out, mean, var)
}

/// [`kiln_tensor::Backend::channel_norm_backward`]: the gradients of the input, the
/// weight and the bias.
#[allow(clippy::too_many_arguments)]
pub fn channel_norm_backward(
    mem: &HostMemory,
    x: &[f32],
    grad: &[f32],
    weight: &[f32],
    (mean, var, eps): (&[f32], &[f32], f32),
    split: AxisSplit,
    batch_statistics: bool,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let channels = split.len;
    let count = (split.outer * split.inner) as f64;
    // Per channel: Σg (the bias gradient) and Σg·(x − mean) (the weight gradient / rstd).
    let (sum_g, sum_gx): (Vec<f64>, Vec<f64>) = (0..channels)
        .into_par_iter()
        .map(|c| {
            let m = mean[c];
            (
                channel_sum(grad, grad, split, c, |g, _| g),
                channel_sum(grad, x, split, c, move |g, v| g * (v - m)),
            )
        })
        .unzip();
    let rstd: Vec<f64> = (0..channels).map(|c| 1.0 / (var[c] as f64 + eps as f64).sqrt()).collect();
    // dx = w·rstd·(g − Σg/n − x̂·Σg·x̂/n) with x̂ = (x − mean)·rstd, as g·a + x·b + c;
    // with given statistics only g·w·rstd.
    let mut coefficients = vec![(0.0f32, 0.0f32, 0.0f32); channels];
    for (c, k) in coefficients.iter_mut().enumerate() {
        let a = weight[c] as f64 * rstd[c];
        *k = if batch_statistics {
            let b = -a * rstd[c] * rstd[c] * sum_gx[c] / count;
            (a as f32, b as f32, (-a * sum_g[c] / count - b * mean[c] as f64) as f32)
        } else {
            (a as f32, 0.0, 0.0)
        };
    }
    let mut dx = mem.take(x.len());
    per_run(&mut dx, split, |run, c, at| {
        let ((a, b, k), len) = (coefficients[c], run.len());
        let (g, v) = (&grad[at..at + len], &x[at..at + len]);
        run.iter_mut().zip(g.iter().zip(v)).for_each(|(o, (g, v))| *o = g * a + v * b + k);
    });
    let dweight = (0..channels).map(|c| (sum_gx[c] * rstd[c]) as f32).collect();
    let dbias = sum_g.iter().map(|&s| s as f32).collect();
    (dx, dweight, dbias)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Normalizes by hand in f64, channel by channel.
    fn by_hand(x: &[f32], split: AxisSplit, eps: f64) -> Vec<f64> {
        let AxisSplit { outer, len, inner } = split;
        let mut out = vec![0.0; x.len()];
        for c in 0..len {
            let at = |n: usize, i: usize| (n * len + c) * inner + i;
            let values: Vec<f64> = (0..outer)
                .flat_map(|n| (0..inner).map(move |i| (n, i)))
                .map(|(n, i)| x[at(n, i)] as f64)
                .collect();
            let mean = values.iter().sum::<f64>() / values.len() as f64;
            let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
            for n in 0..outer {
                for i in 0..inner {
                    out[at(n, i)] = (x[at(n, i)] as f64 - mean) / (var + eps).sqrt();
                }
            }
        }
        out
    }

    #[test]
    fn runs_of_every_length_and_task_split_match_the_definition() {
        let mem = HostMemory::default();
        // inner 1 (BatchNorm1d), short runs, and runs longer than a parallel task.
        for (outer, len, inner) in [(7, 5, 1), (3, 4, 17), (2, 3, TASK_ELEMENTS + 9)] {
            let split = AxisSplit { outer, len, inner };
            let x: Vec<f32> =
                (0..outer * len * inner).map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.3 + 2.0).collect();
            let (ones, zeros) = (vec![1.0; len], vec![0.0; len]);
            let (y, _, _) = channel_norm(&mem, &x, &ones, &zeros, None, split, 1e-5);
            for (i, (got, want)) in y.iter().zip(by_hand(&x, split, 1e-5)).enumerate() {
                assert!(
                    (*got as f64 - want).abs() < 1e-4,
                    "[{outer}, {len}, {inner}] at {i}: {got} vs {want}"
                );
            }
        }
    }
}
