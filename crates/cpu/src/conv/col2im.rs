//! The input gradient of strided convolutions: `Wᵀ · dy` into an unrolled matrix, then
//! added back onto the input positions each entry came from (col2im). Stride-1
//! convolutions take the faster route in [`super::backward_input`] instead.

use kiln_tensor::{Conv2dGeometry, MatmulDims};
use rayon::prelude::*;

use super::{Plan, nchw_to_gemm};
use crate::gemm::{Threads, gemm};
use crate::memory::HostMemory;
use crate::thread_buffer::with_thread_buffer;

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

/// Adds the unrolled gradient `col` of a group back onto its images' gradients `dx`.
fn col2im(col: &[f32], g: &Conv2dGeometry, p: &Plan, dx: &mut [f32]) {
    let width = dx.len() / p.image * p.plane;
    for (j, image) in dx.chunks_mut(p.image).enumerate() {
        let offset = j * p.plane;
        for_each_patch_entry(g, |row, column, at| image[at] += col[row * width + offset + column]);
    }
}

/// Input gradient: `dx = col2im(Wᵀ · dy)`.
pub fn backward_input(mem: &HostMemory, grad: &[f32], w: &[f32], g: &Conv2dGeometry) -> Vec<f32> {
    let p = Plan::new(g);
    let o = g.out_channels;
    let mut dx = mem.zeroed(g.batch * p.image);
    dx.par_chunks_mut(p.group * p.image).zip(p.groups(g.batch)).for_each(|(dx_group, images)| {
        let count = images.len();
        let width = count * p.plane;
        with_thread_buffer(p.patch * width + o * width, |buffer| {
            let (col, dy) = buffer.split_at_mut(p.patch * width);
            nchw_to_gemm(&grad[images.start * p.out_image..images.end * p.out_image], dy, count, o, p.plane);
            let dims = MatmulDims { m: p.patch, k: o, n: width, trans_a: true, trans_b: false };
            gemm(w, dy, col, dims, Threads::Caller);
            col2im(col, g, &p, dx_group);
        });
    });
    dx
}
