//! Convolution as im2col + GEMM: each image's receptive fields are unrolled into a
//! `[C·kH·kW, oH·oW]` matrix (in a reused per-thread buffer) and multiplied by the
//! `[O, C·kH·kW]` weight. Images run in parallel on rayon; the weight gradient sums
//! per-task partial products.

use kiln_tensor::{Conv2dGeometry, MatmulDims};
use rayon::prelude::*;

use crate::gemm::gemm;
use crate::scratch::with_scratch;

/// Rows of the unrolled matrix: `C·kH·kW`.
fn patch_len(g: &Conv2dGeometry) -> usize {
    g.in_channels * g.kernel_h * g.kernel_w
}

/// Calls `f(row, column, input_offset)` for every in-bounds entry of the unrolled
/// matrix of one image; padded entries are skipped.
fn for_each_patch_entry(g: &Conv2dGeometry, mut f: impl FnMut(usize, usize, usize)) {
    let (oh, ow) = (g.out_h(), g.out_w());
    for c in 0..g.in_channels {
        for kh in 0..g.kernel_h {
            for kw in 0..g.kernel_w {
                let row = (c * g.kernel_h + kh) * g.kernel_w + kw;
                for y in 0..oh {
                    let ih = (y * g.stride.0 + kh) as isize - g.padding.0 as isize;
                    if ih < 0 || ih >= g.in_h as isize {
                        continue;
                    }
                    let in_row = (c * g.in_h + ih as usize) * g.in_w;
                    for x in 0..ow {
                        let iw = (x * g.stride.1 + kw) as isize - g.padding.1 as isize;
                        if iw >= 0 && iw < g.in_w as isize {
                            f(row, y * ow + x, in_row + iw as usize);
                        }
                    }
                }
            }
        }
    }
}

/// Unrolls one image into `col` (`[C·kH·kW, oH·oW]`), zero where padded.
fn im2col(image: &[f32], g: &Conv2dGeometry, col: &mut [f32]) {
    col.fill(0.0);
    let cols = g.out_h() * g.out_w();
    for_each_patch_entry(g, |row, column, at| col[row * cols + column] = image[at]);
}

/// Adds the unrolled gradient `col` back onto one image's gradient.
fn col2im(col: &[f32], g: &Conv2dGeometry, image: &mut [f32]) {
    let cols = g.out_h() * g.out_w();
    for_each_patch_entry(g, |row, column, at| image[at] += col[row * cols + column]);
}

/// Forward: `out[n] = W · im2col(x[n]) + bias`.
pub fn forward(x: &[f32], w: &[f32], bias: Option<&[f32]>, g: &Conv2dGeometry) -> Vec<f32> {
    let (k, cols) = (patch_len(g), g.out_h() * g.out_w());
    let image_len = g.in_channels * g.in_h * g.in_w;
    let mut out = vec![0.0; g.batch * g.out_channels * cols];
    out.par_chunks_mut(g.out_channels * cols).enumerate().for_each(|(n, out_n)| {
        with_scratch(k * cols, |col| {
            im2col(&x[n * image_len..(n + 1) * image_len], g, col);
            let dims = MatmulDims { m: g.out_channels, k, n: cols, trans_a: false, trans_b: false };
            gemm(w, col, out_n, dims, 0.0);
        });
        if let Some(bias) = bias {
            for (channel, plane) in out_n.chunks_mut(cols).enumerate() {
                plane.iter_mut().for_each(|v| *v += bias[channel]);
            }
        }
    });
    out
}

/// Input gradient: `dx[n] = col2im(Wᵀ · dy[n])`.
pub fn backward_input(grad: &[f32], w: &[f32], g: &Conv2dGeometry) -> Vec<f32> {
    let (k, cols) = (patch_len(g), g.out_h() * g.out_w());
    let image_len = g.in_channels * g.in_h * g.in_w;
    let mut dx = vec![0.0; g.batch * image_len];
    dx.par_chunks_mut(image_len).enumerate().for_each(|(n, dx_n)| {
        with_scratch(k * cols, |col| {
            let dy = &grad[n * g.out_channels * cols..(n + 1) * g.out_channels * cols];
            let dims = MatmulDims { m: k, k: g.out_channels, n: cols, trans_a: true, trans_b: false };
            gemm(w, dy, col, dims, 0.0);
            col2im(col, g, dx_n);
        });
    });
    dx
}

/// Weight gradient `Σₙ dy[n] · im2col(x[n])ᵀ`, and the bias gradient `Σ dy` per
/// channel when asked.
pub fn backward_weight(
    x: &[f32],
    grad: &[f32],
    g: &Conv2dGeometry,
    with_bias: bool,
) -> (Vec<f32>, Option<Vec<f32>>) {
    let (k, cols) = (patch_len(g), g.out_h() * g.out_w());
    let image_len = g.in_channels * g.in_h * g.in_w;
    let out_len = g.out_channels * cols;
    let dw = (0..g.batch)
        .into_par_iter()
        .fold(
            || vec![0.0; g.out_channels * k],
            |mut acc, n| {
                with_scratch(k * cols, |col| {
                    im2col(&x[n * image_len..(n + 1) * image_len], g, col);
                    let dims = MatmulDims { m: g.out_channels, k: cols, n: k, trans_a: false, trans_b: true };
                    gemm(&grad[n * out_len..(n + 1) * out_len], col, &mut acc, dims, 1.0);
                });
                acc
            },
        )
        .reduce_with(|mut a, b| {
            a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
            a
        })
        .unwrap_or_else(|| vec![0.0; g.out_channels * k]);
    let db = with_bias.then(|| {
        (0..g.out_channels)
            .into_par_iter()
            .map(|o| {
                (0..g.batch)
                    .map(|n| grad[n * out_len + o * cols..n * out_len + (o + 1) * cols].iter().sum::<f32>())
                    .sum()
            })
            .collect()
    });
    (dw, db)
}
