//! The layer-norm gradient of rows of up to [`MAX_FEATURES`] values held in AVX-512
//! registers: a row's input, gradient and normalized values are loaded once and stay
//! in registers through its two sums to the input gradient, two rows side by side so
//! that each row's horizontal sums wait behind the other's work. The lane loops of
//! [`crate::row_norm`] make five passes over each row through memory. On 128 × 50 rows
//! of 128 (2 threads, Zen 4) a layer norm's forward, the sum of its output and the
//! gradient took 0.46 ms with those loops, 0.36 ms with these kernels (0.37 and 0.41
//! with one and three rows in flight).

use std::arch::x86_64::*;

use crate::lanes::LANES;
use crate::row_blocks::{each_block, last_chunk_mask, one_and_several};

/// Longest row these kernels take: eight 16-lane chunks.
pub const MAX_FEATURES: usize = 8 * LANES;

/// Rows side by side in one call of the kernel.
const ROWS_IN_FLIGHT: usize = 2;

/// Consecutive rows of a layer norm's input and upstream gradient, with each row's
/// mean and `1/√(var + eps)` from the forward pass.
#[derive(Clone, Copy)]
pub struct NormRows<'a> {
    /// The input rows.
    pub x: &'a [f32],
    /// The upstream gradient rows.
    pub grad: &'a [f32],
    /// Each row's mean.
    pub means: &'a [f32],
    /// Each row's `1/√(var + eps)`.
    pub rstds: &'a [f32],
    /// The weight (one value per feature), if the norm has one.
    pub weight: Option<&'a [f32]>,
    /// Values in a row, 1 to [`MAX_FEATURES`].
    pub features: usize,
}

/// Writes each row's input gradient into `dx` and adds its terms of `[Σ g·x̂ | Σ g]`
/// (the weight and bias gradients) to `sums` (`2·features` values).
///
/// # Safety
/// The CPU must run AVX-512F.
#[target_feature(enable = "avx512f")]
pub unsafe fn backward_short_rows(rows: NormRows<'_>, dx: &mut [f32], sums: &mut [f32]) {
    let NormRows { x, grad, means, rstds, weight, features } = rows;
    let count = means.len();
    assert!(
        (1..=MAX_FEATURES).contains(&features)
            && x.len() == count * features
            && grad.len() == x.len()
            && dx.len() == x.len()
            && rstds.len() == count
            && sums.len() == 2 * features
            && weight.is_none_or(|w| w.len() == features),
        "layer norm gradient: {count} rows of {features} do not match their buffers"
    );
    let kernels: [unsafe fn(Block, usize); 2] =
        one_and_several!(rows_in_registers, features, ROWS_IN_FLIGHT; 1 2 3 4 5 6 7; 8);
    let block = Block {
        x: x.as_ptr(),
        grad: grad.as_ptr(),
        means: means.as_ptr(),
        rstds: rstds.as_ptr(),
        weight: weight.map_or(std::ptr::null(), <[f32]>::as_ptr),
        dx: dx.as_mut_ptr(),
        sums: sums.as_mut_ptr(),
        features,
        last: last_chunk_mask(features),
    };
    each_block(count, ROWS_IN_FLIGHT, kernels, |first, kernel| {
        // SAFETY: the assertion above: the block's rows from `first` lie inside every
        // buffer; the masks keep every access inside its row.
        unsafe { kernel(block, first) }
    });
}

/// The buffers of [`backward_short_rows`] as pointers, with the last chunk's mask.
#[derive(Clone, Copy)]
struct Block {
    x: *const f32,
    grad: *const f32,
    means: *const f32,
    rstds: *const f32,
    /// Null without a weight.
    weight: *const f32,
    dx: *mut f32,
    sums: *mut f32,
    features: usize,
    /// The lanes of a row's last chunk that hold values.
    last: __mmask16,
}

/// The gradient of the `R` rows from `first`, `W` chunks each (the last one masked).
///
/// # Safety
/// The CPU must run AVX-512F; rows `first..first + R` must lie inside the block's
/// buffers.
#[target_feature(enable = "avx512f")]
unsafe fn rows_in_registers<const W: usize, const R: usize>(block: Block, first: usize) {
    let Block { x, grad, means, rstds, weight, dx, sums, features, last } = block;
    let mask = |c: usize| if c == W - 1 { last } else { !0 };
    let n = features as f32;
    // Plain loops rather than `array::from_fn` with closures, which the compiler may
    // leave as calls outside this function's vector instructions.
    let mut weights = [_mm512_set1_ps(1.0); W];
    if !weight.is_null() {
        for (c, w) in weights.iter_mut().enumerate() {
            // SAFETY: chunk `c` of the block's weight, the last one masked.
            *w = unsafe { _mm512_maskz_loadu_ps(mask(c), weight.add(c * LANES)) };
        }
    }
    let mut rows = [([_mm512_setzero_ps(); W], [_mm512_setzero_ps(); W]); R];
    for (r, (normalized, g)) in rows.iter_mut().enumerate() {
        let row = (first + r) * features;
        // SAFETY: row `first + r` of the caller's rows; the last chunk masked.
        let (mean, rstd) =
            unsafe { (_mm512_set1_ps(*means.add(first + r)), _mm512_set1_ps(*rstds.add(first + r))) };
        for c in 0..W {
            // SAFETY: as above.
            let (v, gc) = unsafe {
                (
                    _mm512_maskz_loadu_ps(mask(c), x.add(row + c * LANES)),
                    _mm512_maskz_loadu_ps(mask(c), grad.add(row + c * LANES)),
                )
            };
            normalized[c] = _mm512_mul_ps(_mm512_sub_ps(v, mean), rstd);
            g[c] = gc;
        }
    }
    let mut totals = [[0.0f32; 2]; R];
    for (total, (normalized, g)) in totals.iter_mut().zip(&rows) {
        let (mut sum_s, mut sum_sx) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        for c in 0..W {
            let scaled = _mm512_mul_ps(g[c], weights[c]);
            sum_s = _mm512_add_ps(sum_s, scaled);
            sum_sx = _mm512_fmadd_ps(scaled, normalized[c], sum_sx);
        }
        *total = [_mm512_reduce_add_ps(sum_s) / n, _mm512_reduce_add_ps(sum_sx) / n];
    }
    for (r, ((normalized, g), [mean_s, mean_sx])) in rows.iter().zip(totals).enumerate() {
        let rstd = unsafe { _mm512_set1_ps(*rstds.add(first + r)) };
        let (mean_s, mean_sx) = (_mm512_set1_ps(mean_s), _mm512_set1_ps(mean_sx));
        for c in 0..W {
            let scaled = _mm512_mul_ps(g[c], weights[c]);
            let centred = _mm512_sub_ps(_mm512_sub_ps(scaled, mean_s), _mm512_mul_ps(normalized[c], mean_sx));
            unsafe {
                _mm512_mask_storeu_ps(
                    dx.add((first + r) * features + c * LANES),
                    mask(c),
                    _mm512_mul_ps(rstd, centred),
                );
                let (sum_gx, sum_g) = (sums.add(c * LANES), sums.add(features + c * LANES));
                let gx = _mm512_fmadd_ps(g[c], normalized[c], _mm512_maskz_loadu_ps(mask(c), sum_gx));
                _mm512_mask_storeu_ps(sum_gx, mask(c), gx);
                _mm512_mask_storeu_ps(
                    sum_g,
                    mask(c),
                    _mm512_add_ps(g[c], _mm512_maskz_loadu_ps(mask(c), sum_g)),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::GemmKernel;

    /// The input gradient and `[Σ g·x̂ | Σ g]` of a layer norm by its definition, in f64.
    fn by_hand(x: &[f32], grad: &[f32], weight: Option<&[f32]>, features: usize) -> (Vec<f64>, Vec<f64>) {
        let mut dx = Vec::new();
        let mut sums = vec![0.0f64; 2 * features];
        for (row, g) in x.chunks(features).zip(grad.chunks(features)) {
            let n = features as f64;
            let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n;
            let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
            let rstd = 1.0 / (var + 1e-5).sqrt();
            let normalized: Vec<f64> = row.iter().map(|&v| (v as f64 - mean) * rstd).collect();
            let scaled: Vec<f64> =
                (0..features).map(|i| g[i] as f64 * weight.map_or(1.0, |w| w[i] as f64)).collect();
            let mean_s = scaled.iter().sum::<f64>() / n;
            let mean_sx = scaled.iter().zip(&normalized).map(|(s, x)| s * x).sum::<f64>() / n;
            for i in 0..features {
                dx.push(rstd * (scaled[i] - mean_s - normalized[i] * mean_sx));
                sums[i] += g[i] as f64 * normalized[i];
                sums[features + i] += g[i] as f64;
            }
        }
        (dx, sums)
    }

    #[test]
    fn row_gradients_of_every_chunk_count_match_the_definition() {
        if !GemmKernel::Avx512.is_available() {
            eprintln!("no AVX-512: no layer-norm gradient kernel to test");
            return;
        }
        for features in [1, 15, 16, 17, 40, 64, 100, 127, MAX_FEATURES] {
            for count in 1..=2 * ROWS_IN_FLIGHT + 1 {
                let x: Vec<f32> =
                    (0..count * features).map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.3 + 1.0).collect();
                let grad: Vec<f32> =
                    (0..count * features).map(|i| ((i * 11 % 7) as f32 - 3.0) * 0.2).collect();
                let weight: Vec<f32> = (0..features).map(|i| 0.5 + i as f32 * 0.01).collect();
                let (mut means, mut rstds) = (vec![0.0; count], vec![0.0; count]);
                for (r, row) in x.chunks(features).enumerate() {
                    let mean = row.iter().map(|&v| v as f64).sum::<f64>() / features as f64;
                    let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / features as f64;
                    (means[r], rstds[r]) = (mean as f32, (1.0 / (var + 1e-5).sqrt()) as f32);
                }
                for weight in [None, Some(&weight[..])] {
                    let rows =
                        NormRows { x: &x, grad: &grad, means: &means, rstds: &rstds, weight, features };
                    let (mut dx, mut sums) = (vec![f32::NAN; x.len()], vec![0.5f32; 2 * features]);
                    // SAFETY: the CPU runs AVX-512 (checked above).
                    unsafe { backward_short_rows(rows, &mut dx, &mut sums) };
                    let (want_dx, want_sums) = by_hand(&x, &grad, weight, features);
                    let at = format!("{count} rows of {features}, weight {}", weight.is_some());
                    for (i, (got, want)) in dx.iter().zip(want_dx).enumerate() {
                        assert!(
                            (*got as f64 - want).abs() <= 1e-4 * want.abs().max(1.0),
                            "{at}: dx[{i}] {got} vs {want}"
                        );
                    }
                    for (i, (got, want)) in sums.iter().zip(want_sums).enumerate() {
                        let want = want + 0.5;
                        assert!(
                            (*got as f64 - want).abs() <= 1e-4 * want.abs().max(1.0),
                            "{at}: sums[{i}] {got} vs {want}"
                        );
                    }
                }
            }
        }
    }
}
