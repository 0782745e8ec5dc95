//! Convolution as im2col + GEMM. Images are processed in groups: a group's receptive
//! fields are unrolled side by side into one `[C·kH·kW, group·oH·oW]` matrix (in a
//! reused per-thread buffer), so every GEMM has enough columns to run at full speed
//! even when the output planes are tiny (3×3 in AlexNet's last layers at 67×67).
//! Groups run in parallel on rayon; the weight gradient sums per-task partial products
//! in a fixed order, so results are bit-identical from run to run.

use kiln_tensor::{Conv2dGeometry, MatmulDims};
use rayon::prelude::*;

use crate::gemm::gemm;
use crate::scratch::with_scratch;

/// Columns a group's GEMM aims for; more adds memory without adding speed.
const TARGET_COLUMNS: usize = 1024;

/// Sizes of one convolution, derived once.
struct Plan {
    /// Rows of the unrolled matrix: `C·kH·kW`.
    patch: usize,
    /// Output pixels per plane: `oH·oW`.
    plane: usize,
    /// Input elements per image.
    image: usize,
    /// Output elements per image.
    out_image: usize,
    /// Images per group.
    group: usize,
}

impl Plan {
    fn new(g: &Conv2dGeometry) -> Self {
        let plane = g.out_h() * g.out_w();
        let per_thread = g.batch.div_ceil(rayon::current_num_threads()).max(1);
        Plan {
            patch: g.in_channels * g.kernel_h * g.kernel_w,
            plane,
            image: g.in_channels * g.in_h * g.in_w,
            out_image: g.out_channels * plane,
            group: TARGET_COLUMNS.div_ceil(plane).clamp(1, per_thread),
        }
    }

    /// The image range of each group.
    fn groups(&self, batch: usize) -> Vec<std::ops::Range<usize>> {
        (0..batch.div_ceil(self.group)).map(|i| i * self.group..((i + 1) * self.group).min(batch)).collect()
    }
}

/// Calls `f(row, column, input_offset)` for every in-bounds entry of one image's
/// unrolled matrix; padded entries are skipped.
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

/// Unrolls images `images` of `x` into `col` (`[patch, images.len()·plane]`), zero
/// where padded.
fn im2col(x: &[f32], images: std::ops::Range<usize>, g: &Conv2dGeometry, p: &Plan, col: &mut [f32]) {
    col.fill(0.0);
    let width = images.len() * p.plane;
    for (j, n) in images.enumerate() {
        let image = &x[n * p.image..(n + 1) * p.image];
        let offset = j * p.plane;
        for_each_patch_entry(g, |row, column, at| col[row * width + offset + column] = image[at]);
    }
}

/// Adds the unrolled gradient `col` back onto the gradients of images `images`.
fn col2im(col: &[f32], images: std::ops::Range<usize>, g: &Conv2dGeometry, p: &Plan, dx: &mut [f32]) {
    let width = images.len() * p.plane;
    for (j, image) in dx.chunks_mut(p.image).enumerate() {
        let offset = j * p.plane;
        for_each_patch_entry(g, |row, column, at| image[at] += col[row * width + offset + column]);
    }
}

/// Copies a group's GEMM result `[O, count·plane]` into its `count` NCHW images.
fn gemm_to_nchw(gemm: &[f32], nchw: &mut [f32], count: usize, o: usize, plane: usize) {
    for (j, image) in nchw.chunks_mut(o * plane).take(count).enumerate() {
        for (c, out) in image.chunks_mut(plane).enumerate() {
            out.copy_from_slice(&gemm[c * count * plane + j * plane..][..plane]);
        }
    }
}

/// Copies `count` NCHW images into GEMM layout `[O, count·plane]`.
fn nchw_to_gemm(nchw: &[f32], gemm: &mut [f32], count: usize, o: usize, plane: usize) {
    for (j, image) in nchw.chunks(o * plane).take(count).enumerate() {
        for (c, source) in image.chunks(plane).enumerate() {
            gemm[c * count * plane + j * plane..][..plane].copy_from_slice(source);
        }
    }
}

/// Forward: `out = W · im2col(x) + bias`.
pub fn forward(x: &[f32], w: &[f32], bias: Option<&[f32]>, g: &Conv2dGeometry) -> Vec<f32> {
    let p = Plan::new(g);
    let o = g.out_channels;
    let mut out = vec![0.0; g.batch * p.out_image];
    out.par_chunks_mut(p.group * p.out_image).zip(p.groups(g.batch)).for_each(|(out_group, images)| {
        let count = images.len();
        let width = count * p.plane;
        with_scratch(p.patch * width + o * width, |scratch| {
            let (col, product) = scratch.split_at_mut(p.patch * width);
            im2col(x, images, g, &p, col);
            let dims = MatmulDims { m: o, k: p.patch, n: width, trans_a: false, trans_b: false };
            gemm(w, col, product, dims, 0.0);
            gemm_to_nchw(product, out_group, count, o, p.plane);
        });
        if let Some(bias) = bias {
            for (i, plane) in out_group.chunks_mut(p.plane).enumerate() {
                plane.iter_mut().for_each(|v| *v += bias[i % o]);
            }
        }
    });
    out
}

/// Input gradient: `dx = col2im(Wᵀ · dy)`.
pub fn backward_input(grad: &[f32], w: &[f32], g: &Conv2dGeometry) -> Vec<f32> {
    let p = Plan::new(g);
    let o = g.out_channels;
    let mut dx = vec![0.0; g.batch * p.image];
    dx.par_chunks_mut(p.group * p.image).zip(p.groups(g.batch)).for_each(|(dx_group, images)| {
        let count = images.len();
        let width = count * p.plane;
        with_scratch(p.patch * width + o * width, |scratch| {
            let (col, dy) = scratch.split_at_mut(p.patch * width);
            nchw_to_gemm(&grad[images.start * p.out_image..images.end * p.out_image], dy, count, o, p.plane);
            let dims = MatmulDims { m: p.patch, k: o, n: width, trans_a: true, trans_b: false };
            gemm(w, dy, col, dims, 0.0);
            col2im(col, images, g, &p, dx_group);
        });
    });
    dx
}

/// Weight gradient `Σ dy · im2col(x)ᵀ`, and the bias gradient `Σ dy` per channel when
/// asked.
pub fn backward_weight(
    x: &[f32],
    grad: &[f32],
    g: &Conv2dGeometry,
    with_bias: bool,
) -> (Vec<f32>, Option<Vec<f32>>) {
    let p = Plan::new(g);
    let o = g.out_channels;
    let partials: Vec<Vec<f32>> = p
        .groups(g.batch)
        .into_par_iter()
        .map(|images| {
            let count = images.len();
            let width = count * p.plane;
            let mut acc = vec![0.0; o * p.patch];
            with_scratch(p.patch * width + o * width, |scratch| {
                let (col, dy) = scratch.split_at_mut(p.patch * width);
                nchw_to_gemm(
                    &grad[images.start * p.out_image..images.end * p.out_image],
                    dy,
                    count,
                    o,
                    p.plane,
                );
                im2col(x, images, g, &p, col);
                let dims = MatmulDims { m: o, k: width, n: p.patch, trans_a: false, trans_b: true };
                gemm(dy, col, &mut acc, dims, 0.0);
            });
            acc
        })
        .collect();
    let mut partials = partials.into_iter();
    let mut dw = partials.next().expect("at least one group");
    for partial in partials {
        dw.iter_mut().zip(&partial).for_each(|(a, b)| *a += b);
    }
    let db = with_bias.then(|| {
        (0..o)
            .into_par_iter()
            .map(|c| {
                (0..g.batch)
                    .map(|n| grad[n * p.out_image + c * p.plane..][..p.plane].iter().sum::<f32>())
                    .sum()
            })
            .collect()
    });
    (dw, db)
}
