//! Copies through strided windows ([`StridedView`]): gathering a window into a
//! contiguous buffer (permute, narrow) and scattering a contiguous buffer into a window
//! (a slice's gradient, the slots of a concatenation). Both walk the window a row (its
//! last dimension) at a time; gathers run in parallel over rows.

use kiln_tensor::StridedView;
use rayon::prelude::*;

use crate::memory::HostMemory;

/// Rows per parallel task, so that a task copies at least this many elements.
const ELEMENTS_PER_TASK: usize = 1 << 14;

/// Storage index of the first element of window row `row`.
fn row_start(view: &StridedView, row: usize) -> usize {
    let rank = view.dims.len();
    let mut rest = row;
    let mut index = view.offset;
    for axis in (0..rank.saturating_sub(1)).rev() {
        index += (rest % view.dims[axis]) * view.strides[axis];
        rest /= view.dims[axis];
    }
    index
}

/// The window's row length and the storage step along a row.
fn row_shape(view: &StridedView) -> (usize, usize) {
    (view.dims.last().copied().unwrap_or(1).max(1), view.strides.last().copied().unwrap_or(0))
}

/// The elements of `x` in `view`, contiguous.
pub fn gather(mem: &HostMemory, x: &[f32], view: &StridedView) -> Vec<f32> {
    let mut out = mem.take(view.numel());
    let (row_len, step) = row_shape(view);
    let rows_per_task = (ELEMENTS_PER_TASK / row_len).max(1);
    out.par_chunks_mut(row_len * rows_per_task).enumerate().for_each(|(task, rows)| {
        for (r, row) in rows.chunks_mut(row_len).enumerate() {
            let start = row_start(view, task * rows_per_task + r);
            if step == 1 {
                row.copy_from_slice(&x[start..start + row.len()]);
            } else {
                row.iter_mut().enumerate().for_each(|(j, o)| *o = x[start + j * step]);
            }
        }
    });
    out
}

/// Writes contiguous `src` into `dst` at `view`, a row at a time on the calling thread:
/// rows of an arbitrary window may share storage, and a row copy runs at memory speed.
pub fn scatter(dst: &mut [f32], view: &StridedView, src: &[f32]) {
    let (row_len, step) = row_shape(view);
    for (row, values) in src.chunks(row_len).enumerate() {
        let start = row_start(view, row);
        if step == 1 {
            dst[start..start + values.len()].copy_from_slice(values);
        } else {
            values.iter().enumerate().for_each(|(j, v)| dst[start + j * step] = *v);
        }
    }
}
