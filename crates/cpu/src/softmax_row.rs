//! The softmax (or log-softmax) of one contiguous row and its gradient, held in 16-lane
//! registers: the row kernels of the CPU softmax and of the attention kernel's score
//! rows.
//!
//! A row of at least [`LANES`] values runs in whole lane chunks only. Where its length
//! is not a multiple of the lanes, the last chunk ends at the row's end and overlaps
//! the one before it: the maximum may see a value twice, the sum counts only the
//! chunk's new lanes, and the overlapping stores write equal values (a row of 50 costs
//! 4 chunks per pass, no scalar steps and no masked stores).

use kiln_tensor::fast_math::exp_bounded;

use crate::lanes::{
    LANES, Lanes, add, horizontal_max, horizontal_sum, load, maximum, multiply, scale, store, subtract,
};

/// `e^(v − max)` of each lane.
#[inline(always)]
fn exp_shifted(mut lanes: Lanes, max: f32) -> Lanes {
    for v in lanes.iter_mut() {
        *v = exp_bounded(*v - max);
    }
    lanes
}

/// Softmax (`log`: log-softmax) of the row `x` into `out`, the maximum subtracted first.
#[inline(always)]
pub fn softmax_row(out: &mut [f32], x: &[f32], log: bool) {
    let len = x.len();
    if len < LANES {
        return softmax_short_row(out, x, log);
    }
    let whole = len / LANES;
    let last_start = len - LANES;
    let last = load(&x[last_start..]);

    let mut maxima = last;
    for c in 0..whole {
        maxima = maximum(maxima, load(&x[c * LANES..]));
    }
    let max = horizontal_max(maxima);
    let last_exp = exp_shifted(last, max);
    let mut sums = multiply(last_exp, new_lanes(len));
    if log {
        for c in 0..whole {
            sums = add(sums, exp_shifted(load(&x[c * LANES..]), max));
        }
        let log_sum = max + horizontal_sum(sums).ln();
        for c in 0..whole {
            store(&mut out[c * LANES..], subtract(load(&x[c * LANES..]), log_sum));
        }
        store(&mut out[last_start..], subtract(last, log_sum));
        return;
    }
    for c in 0..whole {
        let exps = exp_shifted(load(&x[c * LANES..]), max);
        store(&mut out[c * LANES..], exps);
        sums = add(sums, exps);
    }
    let factor = 1.0 / horizontal_sum(sums);
    for c in 0..whole {
        let scaled = scale(load(&out[c * LANES..]), factor);
        store(&mut out[c * LANES..], scaled);
    }
    // The same exponentials as the overlapped whole chunk's, scaled the same way.
    store(&mut out[last_start..], scale(last_exp, factor));
}

/// For a row of `len >= LANES` values, whose last chunk starts `LANES` before its end:
/// 1 in that chunk's lanes that no whole chunk covers, 0 in the others.
#[inline(always)]
fn new_lanes(len: usize) -> Lanes {
    let first_new = LANES - len % LANES;
    // Lane by lane, a comparison with the lane index (one vector compare and select);
    // a `fill` from `first_new` would go through memory.
    let mut lanes = [0.0; LANES];
    for (i, lane) in lanes.iter_mut().enumerate() {
        *lane = if i >= first_new { 1.0 } else { 0.0 };
    }
    lanes
}

/// The gradient of [`softmax_row`] given its output `y` and the upstream gradient
/// `grad`: `y·(g − Σ g·y)`, or for log-softmax `g − e^y·Σ g`. Rows shorter than
/// [`LANES`] return `false` and are left to the caller.
#[inline(always)]
pub fn softmax_row_backward(out: &mut [f32], y: &[f32], grad: &[f32], log: bool) -> bool {
    let len = y.len();
    if len < LANES {
        return false;
    }
    let whole = len / LANES;
    let last_start = len - LANES;
    let new_lanes = new_lanes(len);
    let (last_y, last_grad) = (load(&y[last_start..]), load(&grad[last_start..]));
    let total = if log {
        let mut sums = multiply(last_grad, new_lanes);
        for c in 0..whole {
            sums = add(sums, load(&grad[c * LANES..]));
        }
        horizontal_sum(sums)
    } else {
        let mut sums = multiply(multiply(last_grad, last_y), new_lanes);
        for c in 0..whole {
            sums = add(sums, multiply(load(&grad[c * LANES..]), load(&y[c * LANES..])));
        }
        horizontal_sum(sums)
    };
    if log {
        for c in 0..whole {
            let chunk = log_softmax_gradient(load(&y[c * LANES..]), load(&grad[c * LANES..]), total);
            store(&mut out[c * LANES..], chunk);
        }
        store(&mut out[last_start..], log_softmax_gradient(last_y, last_grad, total));
    } else {
        for c in 0..whole {
            let chunk = softmax_gradient(load(&y[c * LANES..]), load(&grad[c * LANES..]), total);
            store(&mut out[c * LANES..], chunk);
        }
        store(&mut out[last_start..], softmax_gradient(last_y, last_grad, total));
    }
    true
}

/// One chunk of the softmax gradient `y·(g − total)`.
#[inline(always)]
fn softmax_gradient(mut y: Lanes, grad: Lanes, total: f32) -> Lanes {
    for (y, g) in y.iter_mut().zip(grad) {
        *y *= g - total;
    }
    y
}

/// One chunk of the log-softmax gradient `g − e^y·total`.
#[inline(always)]
fn log_softmax_gradient(mut y: Lanes, grad: Lanes, total: f32) -> Lanes {
    for (y, g) in y.iter_mut().zip(grad) {
        *y = g - exp_bounded(*y) * total;
    }
    y
}

/// [`softmax_row`] of a row shorter than [`LANES`], one value after another.
#[inline(always)]
fn softmax_short_row(out: &mut [f32], x: &[f32], log: bool) {
    let max = x.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v));
    out.iter_mut().zip(x).for_each(|(o, v)| *o = exp_bounded(v - max));
    let sum: f32 = out.iter().sum();
    if log {
        let log_sum = max + sum.ln();
        out.iter_mut().zip(x).for_each(|(o, v)| *o = v - log_sum);
    } else {
        let scale = 1.0 / sum;
        out.iter_mut().for_each(|o| *o *= scale);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::softmax_reference::{softmax_f64, softmax_gradient_f64};

    #[test]
    fn row_gradients_of_every_length_from_the_lanes_up_match_the_definition() {
        for len in (LANES..=70).chain([95, 96, 97]) {
            let x: Vec<f32> = (0..len).map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.7).collect();
            let grad: Vec<f32> = (0..len).map(|i| ((i * 11 % 7) as f32 - 3.0) * 0.3).collect();
            for log in [false, true] {
                let mut y = vec![0.0; len];
                softmax_row(&mut y, &x, log);
                let mut out = vec![f32::NAN; len];
                assert!(softmax_row_backward(&mut out, &y, &grad, log));
                for (i, (got, want)) in out.iter().zip(softmax_gradient_f64(&y, &grad, log)).enumerate() {
                    assert!((*got as f64 - want).abs() <= 1e-5, "len {len} log {log} [{i}]: {got} vs {want}");
                }
            }
        }
        assert!(!softmax_row_backward(&mut [0.0; 3], &[0.2, 0.3, 0.5], &[1.0; 3], false));
    }

    #[test]
    fn rows_of_every_length_around_the_lanes_match_the_definition() {
        // Lengths below, at and between multiples of the 16 lanes, where the last chunk
        // overlaps the one before by every possible amount.
        for len in (1..=70).chain([95, 96, 97]) {
            let x: Vec<f32> = (0..len).map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.7).collect();
            for log in [false, true] {
                let mut out = vec![f32::NAN; len];
                softmax_row(&mut out, &x, log);
                for (i, (got, want)) in out.iter().zip(softmax_f64(&x, log)).enumerate() {
                    let tolerance = 2e-6 * want.abs().max(1.0);
                    assert!(
                        (*got as f64 - want).abs() <= tolerance,
                        "len {len} log {log} [{i}]: {got} vs {want}"
                    );
                }
            }
        }
    }
}
