//! Max-pooling in one pass per plane, storing each output's argmax (its position in the
//! input plane) so the backward pass is a scatter.

use kiln_tensor::Pool2dGeometry;
use rayon::prelude::*;

use crate::buffers;

/// Pooled values and the argmax of each output within its input plane.
pub fn forward(x: &[f32], g: &Pool2dGeometry) -> (Vec<f32>, Vec<i32>) {
    let (oh, ow) = (g.out_h(), g.out_w());
    let (plane_in, plane_out) = (g.in_h * g.in_w, oh * ow);
    let planes = g.batch * g.channels;
    let mut values = buffers::take(planes * plane_out);
    let mut argmax = vec![0i32; planes * plane_out];
    values.par_chunks_mut(plane_out).zip(argmax.par_chunks_mut(plane_out)).enumerate().for_each(
        |(p, (vals, idxs))| {
            let input = &x[p * plane_in..(p + 1) * plane_in];
            for y in 0..oh {
                let h0 = (y * g.stride) as isize - g.padding as isize;
                for x_out in 0..ow {
                    let w0 = (x_out * g.stride) as isize - g.padding as isize;
                    let mut best = (f32::NEG_INFINITY, -1i32);
                    for h in h0.max(0)..(h0 + g.kernel as isize).min(g.in_h as isize) {
                        for w in w0.max(0)..(w0 + g.kernel as isize).min(g.in_w as isize) {
                            let at = h as usize * g.in_w + w as usize;
                            if input[at] > best.0 || best.1 < 0 {
                                best = (input[at], at as i32);
                            }
                        }
                    }
                    vals[y * ow + x_out] = best.0;
                    idxs[y * ow + x_out] = best.1;
                }
            }
        },
    );
    (values, argmax)
}

/// Adds each output gradient at its argmax.
pub fn backward(grad: &[f32], argmax: &[i32], g: &Pool2dGeometry) -> Vec<f32> {
    let (plane_in, plane_out) = (g.in_h * g.in_w, g.out_h() * g.out_w());
    // Each plane is cleared right before its scatter, while it sits in cache: one pass
    // over the gradient's memory instead of two.
    let mut dx = buffers::take(g.batch * g.channels * plane_in);
    dx.par_chunks_mut(plane_in).enumerate().for_each(|(p, plane)| {
        plane.fill(0.0);
        let range = p * plane_out..(p + 1) * plane_out;
        for (g, &at) in grad[range.clone()].iter().zip(&argmax[range]) {
            plane[at as usize] += g;
        }
    });
    dx
}
