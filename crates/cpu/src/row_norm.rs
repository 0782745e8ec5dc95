//! Layer normalization on the CPU: each contiguous row normalized, scaled and shifted
//! in one pass after its two sums; the backward pass writes each row's input gradient
//! and sums the weight and bias gradients per group of rows, then over the groups in
//! a fixed order (the same bits on any number of threads).

use kiln_tensor::AxisSplit;
use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use crate::gemm::GemmKernel;
use crate::memory::HostMemory;
use crate::reduce::{sum_contiguous, sum_pairs};
#[cfg(target_arch = "x86_64")]
use crate::row_norm_avx512::{MAX_FEATURES, NormRows, backward_short_rows};
use crate::simd::{VectorLoop, widest};

/// Floats a parallel task covers at least.
const TASK_ELEMENTS: usize = 1 << 14;

/// Rows per parallel task for rows of `features` values.
fn rows_per_task(features: usize) -> usize {
    (TASK_ELEMENTS / features.max(1)).max(1)
}

/// [`kiln_tensor::Backend::row_norm`]: the output and `[means, rstds]`.
pub fn row_norm(
    mem: &HostMemory,
    x: &[f32],
    (weight, bias): (Option<&[f32]>, Option<&[f32]>),
    split: AxisSplit,
    eps: f32,
) -> (Vec<f32>, Vec<f32>) {
    let (rows, features) = (split.outer, split.len);
    let mut out = mem.take(x.len());
    let mut stats = vec![0.0; 2 * rows];
    if out.is_empty() {
        return (out, stats);
    }
    let (means, rstds) = stats.split_at_mut(rows);
    let per_task = rows_per_task(features);
    out.par_chunks_mut(per_task * features)
        .zip(x.par_chunks(per_task * features))
        .zip(means.par_chunks_mut(per_task).zip(rstds.par_chunks_mut(per_task)))
        .for_each(|((out, x), (means, rstds))| {
            widest(ForwardRows { out, x, means, rstds, weight, bias, features, eps })
        });
    (out, stats)
}

/// Consecutive rows of [`row_norm`], compiled whole for each instruction set.
struct ForwardRows<'a> {
    out: &'a mut [f32],
    x: &'a [f32],
    means: &'a mut [f32],
    rstds: &'a mut [f32],
    weight: Option<&'a [f32]>,
    bias: Option<&'a [f32]>,
    features: usize,
    eps: f32,
}

impl VectorLoop for ForwardRows<'_> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let Self { out, x, means, rstds, weight, bias, features, eps } = self;
        let n = features as f32;
        let rows = out.chunks_mut(features).zip(x.chunks(features));
        for ((out, x), (mean, rstd)) in rows.zip(means.iter_mut().zip(rstds.iter_mut())) {
            let m = sum_contiguous(x) / n;
            let r = 1.0 / (sum_pairs(x, x, |v, _| (v - m) * (v - m)) / n + eps).sqrt();
            (*mean, *rstd) = (m, r);
            let normalized = out.iter_mut().zip(x);
            // One pass per case, so that each is one vector loop.
            match (weight, bias) {
                (Some(w), Some(b)) => normalized
                    .zip(w.iter().zip(b))
                    .for_each(|((o, v), (w, b))| *o = ((v - m) * r).mul_add(*w, *b)),
                (Some(w), None) => normalized.zip(w).for_each(|((o, v), w)| *o = (v - m) * r * w),
                (None, Some(b)) => normalized.zip(b).for_each(|((o, v), b)| *o = (v - m) * r + b),
                (None, None) => normalized.for_each(|(o, v)| *o = (v - m) * r),
            }
        }
    }
}

/// [`kiln_tensor::Backend::row_norm_backward`]: the input gradient and the weight and
/// bias gradients (`Σ g·x̂` and `Σ g` over the rows).
pub fn row_norm_backward(
    mem: &HostMemory,
    x: &[f32],
    grad: &[f32],
    weight: Option<&[f32]>,
    stats: &[f32],
    split: AxisSplit,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (rows, features) = (split.outer, split.len);
    let mut dx = mem.take(x.len());
    if dx.is_empty() {
        return (dx, vec![0.0; features], vec![0.0; features]);
    }
    let (means, rstds) = stats.split_at(rows);
    let per_task = rows_per_task(features);
    // Each task's partial [Σ g·x̂ | Σ g] over its rows.
    let partials: Vec<Vec<f32>> = dx
        .par_chunks_mut(per_task * features)
        .zip(x.par_chunks(per_task * features).zip(grad.par_chunks(per_task * features)))
        .zip(means.par_chunks(per_task).zip(rstds.par_chunks(per_task)))
        .map(|((dx, (x, grad)), (means, rstds))| {
            let mut sums = vec![0.0f32; 2 * features];
            #[cfg(target_arch = "x86_64")]
            if features <= MAX_FEATURES && GemmKernel::detect() == GemmKernel::Avx512 {
                let rows = NormRows { x, grad, means, rstds, weight, features };
                // SAFETY: `detect` names AVX-512 only where the CPU runs it.
                unsafe { backward_short_rows(rows, dx, &mut sums) };
                return sums;
            }
            let mut scaled = vec![0.0f32; features];
            widest(BackwardRows {
                dx,
                x,
                grad,
                means,
                rstds,
                weight,
                sums: &mut sums,
                scaled: &mut scaled,
                features,
            });
            sums
        })
        .collect();
    let mut totals = vec![0.0f32; 2 * features];
    for partial in &partials {
        totals.iter_mut().zip(partial).for_each(|(t, p)| *t += p);
    }
    let dbias = totals.split_off(features);
    (dx, totals, dbias)
}

/// Consecutive rows of [`row_norm_backward`], compiled whole for each instruction set:
/// writes their input gradients and adds their terms of `[Σ g·x̂ | Σ g]` to `sums`.
struct BackwardRows<'a> {
    dx: &'a mut [f32],
    x: &'a [f32],
    grad: &'a [f32],
    means: &'a [f32],
    rstds: &'a [f32],
    weight: Option<&'a [f32]>,
    sums: &'a mut [f32],
    /// Scratch for one row's `g·weight`.
    scaled: &'a mut [f32],
    features: usize,
}

impl VectorLoop for BackwardRows<'_> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let Self { dx, x, grad, means, rstds, weight, sums, scaled, features } = self;
        let n = features as f32;
        let (sum_gx, sum_g) = sums.split_at_mut(features);
        let rows = dx.chunks_mut(features).zip(x.chunks(features).zip(grad.chunks(features)));
        for ((dx, (x, g)), (&m, &r)) in rows.zip(means.iter().zip(rstds)) {
            sum_gx.iter_mut().zip(g.iter().zip(x)).for_each(|(s, (g, v))| *s += g * (v - m) * r);
            sum_g.iter_mut().zip(g).for_each(|(s, g)| *s += g);
            match weight {
                Some(w) => scaled.iter_mut().zip(g.iter().zip(w)).for_each(|(s, (g, w))| *s = g * w),
                None => scaled.copy_from_slice(g),
            }
            let mean_s = sum_contiguous(scaled) / n;
            let mean_sx = sum_pairs(scaled, x, |s, v| s * (v - m)) * r / n;
            dx.iter_mut()
                .zip(scaled.iter().zip(x))
                .for_each(|(d, (s, v))| *d = r * (s - mean_s - (v - m) * r * mean_sx));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_spanning_several_tasks_match_the_definition() {
        let mem = HostMemory::default();
        let (rows, features) = (2 * rows_per_task(48) + 3, 48);
        let split = AxisSplit { outer: rows, len: features, inner: 1 };
        let x: Vec<f32> = (0..rows * features).map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.3 + 2.0).collect();
        let w: Vec<f32> = (0..features).map(|i| 0.5 + i as f32 * 0.01).collect();
        let b: Vec<f32> = (0..features).map(|i| i as f32 * -0.02).collect();
        let (y, _) = row_norm(&mem, &x, (Some(&w), Some(&b)), split, 1e-5);
        for (r, (row, out)) in x.chunks(features).zip(y.chunks(features)).enumerate() {
            let mean = row.iter().map(|&v| v as f64).sum::<f64>() / features as f64;
            let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / features as f64;
            for i in 0..features {
                let want = (row[i] as f64 - mean) / (var + 1e-5).sqrt() * w[i] as f64 + b[i] as f64;
                assert!((out[i] as f64 - want).abs() < 1e-4, "row {r}, feature {i}: {} vs {want}", out[i]);
            }
        }
    }
}
