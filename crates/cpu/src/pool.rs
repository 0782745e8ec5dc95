//! Max-pooling in one pass per plane, storing each output's argmax (its position in the
//! input plane) so the backward pass is a scatter.

use kiln_tensor::Pool2dGeometry;
use rayon::prelude::*;

use crate::memory::HostMemory;

/// The input rows (or columns) a window covers: `[start, end)` clamped to the plane.
fn window(out: usize, g: &Pool2dGeometry, len: usize) -> std::ops::Range<usize> {
    let start = (out * g.stride).saturating_sub(g.padding);
    let end = (out * g.stride + g.kernel).saturating_sub(g.padding).min(len);
    start..end
}

/// The largest value of `plane` over `rows × cols` and its index in the plane; the
/// first of equal values wins, and a NaN in the first position is kept (as PyTorch).
fn window_max(
    plane: &[f32],
    in_w: usize,
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
) -> (f32, i32) {
    let first = rows.start * in_w + cols.start;
    let (mut best, mut at) = (plane[first], first);
    for h in rows {
        let row = &plane[h * in_w + cols.start..h * in_w + cols.end];
        for (w, &v) in row.iter().enumerate() {
            if v > best {
                best = v;
                at = h * in_w + cols.start + w;
            }
        }
    }
    (best, at as i32)
}

/// [`window_max`] of a whole `K×K` window at `first` (its top-left index), with the
/// window's size known to the compiler and each row scanned on its own (selects, no
/// branches), so the compare chain is `K + K − 1` long instead of `K²`. Rows after the
/// first start from −∞: a NaN only wins in the window's first position, as in the
/// direct scan, and a later row takes over only with a strictly larger value.
#[inline(always)]
fn whole_window_max<const K: usize>(plane: &[f32], in_w: usize, first: usize) -> (f32, i32) {
    let window = &plane[first..first + (K - 1) * in_w + K];
    let row_max = |h: usize, start: (f32, usize)| {
        let (mut best, mut at) = start;
        for w in 0..K {
            let v = window[h * in_w + w];
            let better = v > best;
            best = if better { v } else { best };
            at = if better { h * in_w + w } else { at };
        }
        (best, at)
    };
    let rows: [(f32, usize); K] = std::array::from_fn(|h| {
        row_max(h, if h == 0 { (window[0], 0) } else { (f32::NEG_INFINITY, h * in_w) })
    });
    let (mut best, mut at) = rows[0];
    for &(v, i) in &rows[1..] {
        let better = v > best;
        best = if better { v } else { best };
        at = if better { i } else { at };
    }
    (best, (first + at) as i32)
}

/// Pooled values and the argmax of each output within its input plane.
pub fn forward(mem: &HostMemory, x: &[f32], g: &Pool2dGeometry) -> (Vec<f32>, Vec<i32>) {
    let plane_out = g.out_h() * g.out_w();
    let len = g.batch * g.channels * plane_out;
    let (mut values, mut argmax) = (mem.take(len), mem.take_i32(len));
    let columns = column_windows(g);
    values.par_chunks_mut(plane_out).zip(argmax.par_chunks_mut(plane_out)).enumerate().for_each(
        |(p, (values, argmax))| {
            pool_plane(plane(x, g, p), g, &columns, |out, (value, at)| {
                values[out] = value;
                argmax[out] = at;
            });
        },
    );
    (values, argmax)
}

/// Pooled values alone, for a pass nobody differentiates: no argmax stored (and, for
/// whole windows, none computed).
pub fn forward_values(mem: &HostMemory, x: &[f32], g: &Pool2dGeometry) -> Vec<f32> {
    let plane_out = g.out_h() * g.out_w();
    let mut values = mem.take(g.batch * g.channels * plane_out);
    let columns = column_windows(g);
    values.par_chunks_mut(plane_out).enumerate().for_each(|(p, values)| {
        pool_plane(plane(x, g, p), g, &columns, |out, (value, _)| values[out] = value);
    });
    values
}

/// The input columns each output column's windows cover.
fn column_windows(g: &Pool2dGeometry) -> Vec<std::ops::Range<usize>> {
    (0..g.out_w()).map(|x_out| window(x_out, g, g.in_w)).collect()
}

/// Input plane `p` of `x`.
fn plane<'a>(x: &'a [f32], g: &Pool2dGeometry, p: usize) -> &'a [f32] {
    &x[p * g.in_h * g.in_w..][..g.in_h * g.in_w]
}

/// Hands `store` each output of one plane (its index in the output plane) with its
/// value and argmax.
#[inline(always)]
fn pool_plane(
    input: &[f32],
    g: &Pool2dGeometry,
    columns: &[std::ops::Range<usize>],
    mut store: impl FnMut(usize, (f32, i32)),
) {
    for y in 0..g.out_h() {
        let rows = window(y, g, g.in_h);
        for (x, cols) in columns.iter().enumerate() {
            let whole = rows.len() == 3 && cols.len() == 3 && g.kernel == 3;
            let result = if whole {
                whole_window_max::<3>(input, g.in_w, rows.start * g.in_w + cols.start)
            } else {
                window_max(input, g.in_w, rows.clone(), cols.clone())
            };
            store(y * columns.len() + x, result);
        }
    }
}

/// Adds each output gradient at its argmax.
pub fn backward(mem: &HostMemory, grad: &[f32], argmax: &[i32], g: &Pool2dGeometry) -> Vec<f32> {
    let (plane_in, plane_out) = (g.in_h * g.in_w, g.out_h() * g.out_w());
    // Each plane is cleared right before its scatter, while it sits in cache: one pass
    // over the gradient's memory instead of two.
    let mut dx = mem.take(g.batch * g.channels * plane_in);
    dx.par_chunks_mut(plane_in).enumerate().for_each(|(p, plane)| {
        plane.fill(0.0);
        let range = p * plane_out..(p + 1) * plane_out;
        for (g, &at) in grad[range.clone()].iter().zip(&argmax[range]) {
            plane[at as usize] += g;
        }
    });
    dx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_window_finds_what_the_general_scan_finds_ties_and_nans_included() {
        let in_w = 5;
        // Few distinct values (ties, as after a ReLU), NaNs and infinities, at every
        // offset of a 3×3 window in a 5×5 plane.
        let cases: Vec<Vec<f32>> = (0..200u32)
            .map(|seed| {
                (0..25u32)
                    .map(|i| match (i * 7919 + seed * 104_729) % 29 {
                        0 => f32::NAN,
                        1 => f32::NEG_INFINITY,
                        r => (r % 4) as f32,
                    })
                    .collect()
            })
            .collect();
        for plane in &cases {
            for first in [0, 1, 2, 5, 7, 10, 12] {
                let (top, left) = (first / in_w, first % in_w);
                let (v, i) = whole_window_max::<3>(plane, in_w, first);
                let (want_v, want_i) = window_max(plane, in_w, top..top + 3, left..left + 3);
                assert_eq!((v.to_bits(), i), (want_v.to_bits(), want_i), "{plane:?} at {first}");
            }
        }
    }
}
