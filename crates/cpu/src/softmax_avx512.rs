//! Softmax and log-softmax of short rows (up to [`MAX_LEN`] values) held in AVX-512
//! registers from the maximum to the store, several rows side by side, and their
//! gradient: the rows of the CPU softmax over a short last axis and the score rows of
//! the fused attention.
//!
//! A row's passes wait on its horizontal maximum and sum; with three rows in flight
//! each hides the others' waits. The last chunk of a row is loaded and stored under a
//! mask, so a row never reads or writes past its `len` values. On 128 × 4 × 50 rows of
//! 50 (2 threads, Zen 4) the forward took 0.58 ms through the lane loops of
//! [`crate::softmax_row`], 0.36 ms here one row at a time, 0.31 / 0.29 / 0.33 ms with
//! two / three / four rows in flight; forward and backward 1.23 → 0.63 ms.

use std::arch::x86_64::*;

use kiln_tensor::fast_math::exp_bounded;

use crate::lanes::{LANES, Lanes};
use crate::row_blocks::{each_block, last_chunk_mask, one_and_several};

/// Longest row these kernels take: four 16-lane chunks.
pub const MAX_LEN: usize = 4 * LANES;

/// Rows side by side in one call of the kernel.
const ROWS_IN_FLIGHT: usize = 3;

/// Where the rows of one call lie: row `r` reads `len` values at `input + r·input_stride`
/// and writes `len` values at `out + r·out_stride`.
#[derive(Clone, Copy)]
pub struct ShortRows<'a> {
    /// The rows' values.
    pub input: &'a [f32],
    /// Distance between the starts of two input rows.
    pub input_stride: usize,
    /// Values in a row, 1 to [`MAX_LEN`].
    pub len: usize,
    /// Distance between the starts of two output rows.
    pub out_stride: usize,
}

/// The softmax (`log`: log-softmax) of each of the `rows` rows of `rows_of` into `out`.
///
/// # Safety
/// The CPU must run AVX-512F.
#[target_feature(enable = "avx512f")]
pub unsafe fn softmax_short_rows(rows: usize, rows_of: ShortRows<'_>, out: &mut [f32], log: bool) {
    let ShortRows { input, input_stride, len, out_stride } = rows_of;
    assert!(
        (1..=MAX_LEN).contains(&len)
            && (rows == 0
                || ((rows - 1) * input_stride + len <= input.len()
                    && (rows - 1) * out_stride + len <= out.len())),
        "softmax rows: {rows} rows of {len} out of their buffers"
    );
    let kernels: [unsafe fn(Block, bool); 2] =
        one_and_several!(rows_in_registers, len, ROWS_IN_FLIGHT; 1 2 3; 4);
    let last = last_chunk_mask(len);
    each_block(rows, ROWS_IN_FLIGHT, kernels, |first, kernel| {
        let block = Block {
            input: input[first * input_stride..].as_ptr(),
            input_stride,
            out: out[first * out_stride..].as_mut_ptr(),
            out_stride,
            last,
        };
        // SAFETY: the assertion above: the block's rows of `len` values lie inside
        // `input` and `out`; the masks keep every access inside them.
        unsafe { kernel(block, log) }
    });
}

/// One call's rows: as [`ShortRows`], from raw pointers, with the last chunk's mask.
#[derive(Clone, Copy)]
struct Block {
    input: *const f32,
    input_stride: usize,
    out: *mut f32,
    out_stride: usize,
    /// The lanes of a row's last chunk that hold values.
    last: __mmask16,
}

/// The softmax of `R` rows of `W` chunks (the last one masked) into their outputs.
///
/// # Safety
/// The CPU must run AVX-512F; the block's `R` input and output rows must hold
/// `(W − 1)·16` values plus the last mask's lanes.
#[target_feature(enable = "avx512f")]
unsafe fn rows_in_registers<const W: usize, const R: usize>(block: Block, log: bool) {
    let Block { input, input_stride, out, out_stride, last } = block;
    let mask = |c: usize| if c == W - 1 { last } else { !0 };
    // SAFETY: the caller's rows; the last chunk's load touches only its masked lanes.
    let x: [[__m512; W]; R] = std::array::from_fn(|r| {
        std::array::from_fn(|c| unsafe {
            _mm512_maskz_loadu_ps(mask(c), input.add(r * input_stride + c * LANES))
        })
    });
    let mut max = [_mm512_setzero_ps(); R];
    for (max, row) in max.iter_mut().zip(&x) {
        let mut maxima = _mm512_mask_mov_ps(_mm512_set1_ps(f32::NEG_INFINITY), last, row[W - 1]);
        for chunk in &row[..W - 1] {
            maxima = _mm512_max_ps(maxima, *chunk);
        }
        *max = _mm512_set1_ps(_mm512_reduce_max_ps(maxima));
    }
    let mut exps = x;
    for (row, max) in exps.iter_mut().zip(max) {
        for (c, e) in row.iter_mut().enumerate() {
            *e = _mm512_maskz_mov_ps(mask(c), exp_lanes(_mm512_sub_ps(*e, max)));
        }
    }
    let mut totals = [0.0f32; R];
    for (total, row) in totals.iter_mut().zip(&exps) {
        let mut sums = row[0];
        for e in &row[1..] {
            sums = _mm512_add_ps(sums, *e);
        }
        *total = _mm512_reduce_add_ps(sums);
    }
    for r in 0..R {
        let row: [__m512; W] = if log {
            let shift = _mm512_add_ps(max[r], _mm512_set1_ps(totals[r].ln()));
            x[r].map(|chunk| _mm512_sub_ps(chunk, shift))
        } else {
            let factor = _mm512_set1_ps(1.0 / totals[r]);
            exps[r].map(|e| _mm512_mul_ps(e, factor))
        };
        for (c, chunk) in row.into_iter().enumerate() {
            // SAFETY: chunk `c` of the caller's output row `r`, the last one masked.
            unsafe { _mm512_mask_storeu_ps(out.add(r * out_stride + c * LANES), mask(c), chunk) }
        }
    }
}

/// The sixteen lanes of a register as an array.
#[inline(always)]
fn to_lanes(v: __m512) -> Lanes {
    // SAFETY: both are sixteen `f32`s, every bit pattern valid.
    unsafe { std::mem::transmute::<__m512, Lanes>(v) }
}

/// `e^v` of each lane, for lanes at most 88 (a softmax's shifted values).
#[inline(always)]
fn exp_lanes(v: __m512) -> __m512 {
    let mut lanes = to_lanes(v);
    for lane in lanes.iter_mut() {
        *lane = exp_bounded(*lane);
    }
    // SAFETY: as for `to_lanes`.
    unsafe { std::mem::transmute::<Lanes, __m512>(lanes) }
}

/// The gradient of [`softmax_short_rows`] for `rows` contiguous rows of `len` values,
/// given the output `y` and the upstream gradient `grad`: `y·(g − Σ g·y)`, or for
/// log-softmax `g − e^y·Σ g`, into `out`.
///
/// # Safety
/// The CPU must run AVX-512F.
#[target_feature(enable = "avx512f")]
pub unsafe fn softmax_short_rows_backward(y: &[f32], grad: &[f32], len: usize, out: &mut [f32], log: bool) {
    assert!(
        (1..=MAX_LEN).contains(&len)
            && y.len().is_multiple_of(len)
            && grad.len() == y.len()
            && out.len() == y.len(),
        "softmax gradient rows: {} values of y, {} of the gradient and {} out are not rows of {len}",
        y.len(),
        grad.len(),
        out.len()
    );
    let kernels: [unsafe fn(GradientBlock, bool); 2] =
        one_and_several!(gradient_in_registers, len, ROWS_IN_FLIGHT; 1 2 3; 4);
    let last = last_chunk_mask(len);
    each_block(y.len() / len, ROWS_IN_FLIGHT, kernels, |first, kernel| {
        let block = GradientBlock {
            y: y[first * len..].as_ptr(),
            grad: grad[first * len..].as_ptr(),
            out: out[first * len..].as_mut_ptr(),
            len,
            last,
        };
        // SAFETY: the assertion above: the block's rows of `len` values lie inside `y`,
        // `grad` and `out`; the masks keep every access inside them.
        unsafe { kernel(block, log) }
    });
}

/// One call's rows of a softmax gradient: row `r` at `r·len` from each pointer.
#[derive(Clone, Copy)]
struct GradientBlock {
    y: *const f32,
    grad: *const f32,
    out: *mut f32,
    len: usize,
    /// The lanes of a row's last chunk that hold values.
    last: __mmask16,
}

/// The softmax gradient of `R` rows of `W` chunks (the last one masked).
///
/// # Safety
/// The CPU must run AVX-512F; the block's `R` rows must hold `(W − 1)·16` values plus
/// the last mask's lanes at each pointer.
#[target_feature(enable = "avx512f")]
unsafe fn gradient_in_registers<const W: usize, const R: usize>(block: GradientBlock, log: bool) {
    let GradientBlock { y, grad, out, len, last } = block;
    let mask = |c: usize| if c == W - 1 { last } else { !0 };
    // SAFETY: the caller's rows; the last chunk's loads touch only its masked lanes.
    let load = |from: *const f32| -> [[__m512; W]; R] {
        std::array::from_fn(|r| {
            std::array::from_fn(|c| unsafe { _mm512_maskz_loadu_ps(mask(c), from.add(r * len + c * LANES)) })
        })
    };
    let (y, grad) = (load(y), load(grad));
    let mut totals = [_mm512_setzero_ps(); R];
    for r in 0..R {
        let mut sums = if log { grad[r][0] } else { _mm512_mul_ps(grad[r][0], y[r][0]) };
        for c in 1..W {
            sums = if log {
                _mm512_add_ps(sums, grad[r][c])
            } else {
                _mm512_fmadd_ps(grad[r][c], y[r][c], sums)
            };
        }
        totals[r] = _mm512_set1_ps(_mm512_reduce_add_ps(sums));
    }
    for r in 0..R {
        for c in 0..W {
            let chunk = if log {
                _mm512_fnmadd_ps(exp_lanes(y[r][c]), totals[r], grad[r][c])
            } else {
                _mm512_mul_ps(y[r][c], _mm512_sub_ps(grad[r][c], totals[r]))
            };
            // SAFETY: chunk `c` of the caller's output row `r`, the last one masked.
            unsafe { _mm512_mask_storeu_ps(out.add(r * len + c * LANES), mask(c), chunk) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::GemmKernel;
    use crate::softmax_reference::{softmax_f64, softmax_gradient_f64};

    fn value(i: usize, scale: f32) -> f32 {
        ((i * 37 % 23) as f32 - 11.0) * scale
    }

    #[test]
    fn rows_of_every_length_and_count_match_the_definition_and_stay_in_their_rows() {
        if !GemmKernel::Avx512.is_available() {
            eprintln!("no AVX-512: no short-row softmax kernel to test");
            return;
        }
        // Row counts around the rows in flight; strides of back-to-back rows and of
        // padded rows (the attention's score rows).
        for len in 1..=MAX_LEN {
            for rows in 1..=2 * ROWS_IN_FLIGHT + 1 {
                for (input_stride, out_stride) in [(len, len), (len.next_multiple_of(LANES), len + 3)] {
                    let input: Vec<f32> = (0..rows * input_stride).map(|i| value(i, 0.7)).collect();
                    for log in [false, true] {
                        let mut out = vec![f32::NAN; rows * out_stride + 5];
                        let rows_of = ShortRows { input: &input, input_stride, len, out_stride };
                        // SAFETY: the CPU runs AVX-512 (checked above).
                        unsafe { softmax_short_rows(rows, rows_of, &mut out, log) };
                        for r in 0..rows {
                            let want = softmax_f64(&input[r * input_stride..][..len], log);
                            for (i, want) in want.into_iter().enumerate() {
                                let got = out[r * out_stride + i] as f64;
                                let at = format!("len {len} rows {rows} log {log} [{r}][{i}]");
                                assert!(
                                    (got - want).abs() <= 2e-6 * want.abs().max(1.0),
                                    "{at}: {got} vs {want}"
                                );
                            }
                            let gap = out[r * out_stride + len..]
                                [..out_stride - len + usize::from(r == rows - 1) * 5]
                                .iter()
                                .all(|v| v.is_nan());
                            assert!(gap, "len {len} rows {rows} log {log}: row {r} wrote past its end");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn row_gradients_of_every_length_and_count_match_the_definition() {
        if !GemmKernel::Avx512.is_available() {
            eprintln!("no AVX-512: no short-row softmax kernel to test");
            return;
        }
        for len in 1..=MAX_LEN {
            for rows in 1..=2 * ROWS_IN_FLIGHT + 1 {
                let x: Vec<f32> = (0..rows * len).map(|i| value(i, 0.7)).collect();
                let grad: Vec<f32> = (0..rows * len).map(|i| value(i * 11, 0.3)).collect();
                for log in [false, true] {
                    let mut y = vec![0.0; rows * len];
                    let rows_of = ShortRows { input: &x, input_stride: len, len, out_stride: len };
                    let mut out = vec![f32::NAN; rows * len];
                    // SAFETY: the CPU runs AVX-512 (checked above).
                    unsafe {
                        softmax_short_rows(rows, rows_of, &mut y, log);
                        softmax_short_rows_backward(&y, &grad, len, &mut out, log);
                    }
                    for r in 0..rows {
                        let row = r * len..(r + 1) * len;
                        let want = softmax_gradient_f64(&y[row.clone()], &grad[row.clone()], log);
                        for (i, (got, want)) in out[row].iter().zip(want).enumerate() {
                            let at = format!("len {len} rows {rows} log {log} [{r}][{i}]");
                            assert!((*got as f64 - want).abs() <= 1e-5, "{at}: {got} vs {want}");
                        }
                    }
                }
            }
        }
    }
}
