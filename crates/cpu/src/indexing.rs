//! Picking positions along an axis by i32 indices ([`AxisIndexing`]) and the adjoint,
//! adding values back at those positions. Parallel over the outer dimension; within
//! it, additions run in index order, so results do not depend on the thread count.

use kiln_tensor::AxisIndexing;
use rayon::prelude::*;

use crate::memory::HostMemory;

/// The index of output element `(o, j, i)`, or `None` outside the axis.
fn position(g: &AxisIndexing, indices: &[i32], o: usize, j: usize, i: usize) -> Option<usize> {
    let index = indices[o * g.outer_stride + j * g.count_stride + i * g.inner_stride];
    usize::try_from(index).ok().filter(|&p| p < g.split.len)
}

/// `[outer, count, inner]` picked from `x` (`[outer, len, inner]`).
pub fn gather(mem: &HostMemory, x: &[f32], indices: &[i32], g: AxisIndexing) -> Vec<f32> {
    let (len, inner, count) = (g.split.len, g.split.inner, g.count);
    let mut out = mem.take(g.split.outer * count * inner);
    if out.is_empty() {
        return out;
    }
    out.par_chunks_mut(count * inner).enumerate().for_each(|(o, block)| {
        for (j, row) in block.chunks_mut(inner).enumerate() {
            for (i, v) in row.iter_mut().enumerate() {
                *v = position(&g, indices, o, j, i).map_or(f32::NAN, |p| x[(o * len + p) * inner + i]);
            }
        }
    });
    out
}

/// `[outer, len, inner]` zeros with `src` (`[outer, count, inner]`) added at the
/// indexed positions.
pub fn scatter_add(mem: &HostMemory, src: &[f32], indices: &[i32], g: AxisIndexing) -> Vec<f32> {
    let (len, inner, count) = (g.split.len, g.split.inner, g.count);
    let mut out = mem.take(g.split.outer * len * inner);
    out.fill(0.0);
    if out.is_empty() {
        return out;
    }
    out.par_chunks_mut(len * inner).enumerate().for_each(|(o, block)| {
        for j in 0..count {
            for i in 0..inner {
                if let Some(p) = position(&g, indices, o, j, i) {
                    block[p * inner + i] += src[(o * count + j) * inner + i];
                }
            }
        }
    });
    out
}
