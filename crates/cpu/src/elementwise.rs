//! Elementwise kernels: unary functions and their gradients, broadcasting binary
//! arithmetic, broadcast copies and dropout, each parallel over chunks.

use kiln_tensor::{
    BinaryOp, DropoutMask, GradientRule, GradientSource, Shape, UnaryGradientKernel, UnaryKernel, UnaryOp,
    ValueRule,
};
use rayon::prelude::*;

use crate::memory::HostMemory;
use crate::simd::{VectorLoop, widest};

/// Elements per parallel task: large enough that scheduling costs nothing.
const CHUNK: usize = 1 << 14;

/// `out[i] = f(i)` in parallel.
fn fill_indexed(mem: &HostMemory, len: usize, f: impl Fn(usize) -> f32 + Sync) -> Vec<f32> {
    let mut out = mem.take(len);
    out.par_chunks_mut(CHUNK).enumerate().for_each(|(c, chunk)| {
        widest(|| {
            for (j, o) in chunk.iter_mut().enumerate() {
                *o = f(c * CHUNK + j);
            }
        })
    });
    out
}

/// `f(a, b)` elementwise over two equally long slices.
fn map2(mem: &HostMemory, a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) -> Vec<f32> {
    let mut out = mem.take(a.len());
    out.par_chunks_mut(CHUNK).zip(a.par_chunks(CHUNK)).zip(b.par_chunks(CHUNK)).for_each(|((out, a), b)| {
        widest(|| out.iter_mut().zip(a).zip(b).for_each(|((o, a), b)| *o = f(*a, *b)))
    });
    out
}

/// `op(x)` elementwise.
pub fn unary(mem: &HostMemory, op: UnaryOp, x: &[f32]) -> Vec<f32> {
    op.forward(FreshValues { mem, x })
}

/// `grad · op'(x)`, using the output `y` where it is cheaper, in a new buffer.
pub fn unary_backward(mem: &HostMemory, op: UnaryOp, x: &[f32], y: &[f32], grad: &[f32]) -> Vec<f32> {
    op.gradient(FreshGradient { mem, saved: Saved { x, y }, grad })
}

/// [`unary_backward`] written over `grad` itself.
pub fn unary_backward_in_place(op: UnaryOp, x: &[f32], y: &[f32], grad: &mut [f32]) {
    op.gradient(InPlaceGradient { saved: Saved { x, y }, grad })
}

/// A unary op's values in a new buffer from `mem`.
struct FreshValues<'a> {
    mem: &'a HostMemory,
    x: &'a [f32],
}

impl UnaryKernel for FreshValues<'_> {
    type Output = Vec<f32>;

    fn map(self, rule: impl ValueRule) -> Vec<f32> {
        let mut out = self.mem.take(self.x.len());
        out.par_chunks_mut(CHUNK)
            .zip(self.x.par_chunks(CHUNK))
            .for_each(|(out, x)| widest(ValueLoop { out, x, rule }));
        out
    }
}

/// `out[i] = rule(x[i])`, compiled whole for each instruction set.
struct ValueLoop<'a, R> {
    out: &'a mut [f32],
    x: &'a [f32],
    rule: R,
}

impl<R: ValueRule> VectorLoop for ValueLoop<'_, R> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        for (o, x) in self.out.iter_mut().zip(self.x) {
            *o = self.rule.apply(*x);
        }
    }
}

/// `out[i] = rule(saved[i], grad[i])` (`out` may be `grad` itself: [`GradientTarget`]),
/// compiled whole for each instruction set.
struct GradientLoop<'a, R> {
    target: GradientTarget<'a>,
    saved: &'a [f32],
    rule: R,
}

/// Where a [`GradientLoop`] writes.
enum GradientTarget<'a> {
    /// A new buffer, next to the upstream gradient.
    Fresh { out: &'a mut [f32], grad: &'a [f32] },
    /// Over the upstream gradient.
    InPlace(&'a mut [f32]),
}

impl<R: GradientRule> VectorLoop for GradientLoop<'_, R> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        match self.target {
            GradientTarget::Fresh { out, grad } => {
                for ((o, g), s) in out.iter_mut().zip(grad).zip(self.saved) {
                    *o = self.rule.apply(*s, *g);
                }
            }
            GradientTarget::InPlace(grad) => {
                for (g, s) in grad.iter_mut().zip(self.saved) {
                    *g = self.rule.apply(*s, *g);
                }
            }
        }
    }
}

/// The values a gradient rule may read besides the upstream gradient.
#[derive(Clone, Copy)]
struct Saved<'a> {
    x: &'a [f32],
    y: &'a [f32],
}

impl<'a> Saved<'a> {
    /// The buffer a rule reads, `None` when it reads neither.
    fn of(self, source: GradientSource) -> Option<&'a [f32]> {
        match source {
            GradientSource::Input => Some(self.x),
            GradientSource::Output => Some(self.y),
            GradientSource::Nothing => None,
        }
    }
}

/// A gradient in a new buffer from `mem`, next to the incoming gradient.
struct FreshGradient<'a> {
    mem: &'a HostMemory,
    saved: Saved<'a>,
    grad: &'a [f32],
}

impl UnaryGradientKernel for FreshGradient<'_> {
    type Output = Vec<f32>;

    fn map(self, source: GradientSource, rule: impl GradientRule) -> Vec<f32> {
        // A rule that reads neither ignores its first argument: the gradient stands in.
        let saved = self.saved.of(source).unwrap_or(self.grad);
        let mut out = self.mem.take(self.grad.len());
        out.par_chunks_mut(CHUNK).zip(self.grad.par_chunks(CHUNK).zip(saved.par_chunks(CHUNK))).for_each(
            |(out, (grad, saved))| {
                widest(GradientLoop { target: GradientTarget::Fresh { out, grad }, saved, rule })
            },
        );
        out
    }
}

/// A gradient written over the incoming gradient's own buffer.
struct InPlaceGradient<'a> {
    saved: Saved<'a>,
    grad: &'a mut [f32],
}

impl UnaryGradientKernel for InPlaceGradient<'_> {
    type Output = ();

    fn map(self, source: GradientSource, rule: impl GradientRule) {
        // A rule that reads neither gets zeros (and ignores them).
        static ZEROS: [f32; CHUNK] = [0.0; CHUNK];
        let saved = self.saved.of(source);
        self.grad.par_chunks_mut(CHUNK).enumerate().for_each(|(c, grad)| {
            let saved = saved.map_or(&ZEROS[..grad.len()], |saved| &saved[c * CHUNK..c * CHUNK + grad.len()]);
            widest(GradientLoop { target: GradientTarget::InPlace(grad), saved, rule })
        })
    }
}

/// Offset in a broadcast operand of the first element of output row `row` (rows run
/// along the last output dimension).
fn row_offset(row: usize, out_dims: &[usize], strides: &[usize]) -> usize {
    let mut rest = row;
    let mut offset = 0;
    for axis in (0..out_dims.len().saturating_sub(1)).rev() {
        offset += (rest % out_dims[axis]) * strides[axis];
        rest /= out_dims[axis];
    }
    offset
}

/// `dims` with each run of adjacent dimensions that both operands step through as one
/// (a dimension's stride equals the next one's stride times its size, for both; a
/// broadcast dimension has stride 0) merged into one, with the operands' strides: a
/// per-channel `[1, C, 1, 1]` operand against `[N, C, H, W]` gives rows of `H·W`
/// instead of `W`.
fn merge_dimensions(dims: &[usize], sa: Vec<usize>, sb: Vec<usize>) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let (mut merged, mut ma, mut mb): (Vec<usize>, Vec<usize>, Vec<usize>) =
        (Vec::new(), Vec::new(), Vec::new());
    for axis in 0..dims.len() {
        match (merged.last_mut(), ma.last(), mb.last()) {
            (Some(size), Some(&a), Some(&b)) if a == sa[axis] * dims[axis] && b == sb[axis] * dims[axis] => {
                *size *= dims[axis];
                *ma.last_mut().expect("same length") = sa[axis];
                *mb.last_mut().expect("same length") = sb[axis];
            }
            _ => {
                merged.push(dims[axis]);
                ma.push(sa[axis]);
                mb.push(sb[axis]);
            }
        }
    }
    (merged, ma, mb)
}

/// Calls `f(out_row, a_offset, a_step, b_offset, b_step)` for every row of the output.
fn for_each_broadcast_row(
    out: &mut [f32],
    a_shape: &Shape,
    b_shape: &Shape,
    out_shape: &Shape,
    f: impl Fn(&mut [f32], usize, usize, usize, usize) + Sync,
) {
    let (dims, sa, sb) = merge_dimensions(
        out_shape.dims(),
        a_shape.broadcast_strides(out_shape),
        b_shape.broadcast_strides(out_shape),
    );
    let dims = &dims[..];
    let row_len = dims.last().copied().unwrap_or(1).max(1);
    let (step_a, step_b) = (sa.last().copied().unwrap_or(0), sb.last().copied().unwrap_or(0));
    if row_len > CHUNK {
        // Long rows (a scalar's gradient spread over a whole tensor) split into pieces.
        out.par_chunks_mut(row_len).enumerate().for_each(|(index, row)| {
            let (oa, ob) = (row_offset(index, dims, &sa), row_offset(index, dims, &sb));
            row.par_chunks_mut(CHUNK).enumerate().for_each(|(piece, part)| {
                let start = piece * CHUNK;
                widest(|| f(part, oa + start * step_a, step_a, ob + start * step_b, step_b))
            })
        });
        return;
    }
    let rows_per_task = (CHUNK / row_len).max(1);
    out.par_chunks_mut(row_len * rows_per_task).enumerate().for_each(|(task, rows)| {
        widest(|| {
            for (r, row) in rows.chunks_mut(row_len).enumerate() {
                let index = task * rows_per_task + r;
                f(row, row_offset(index, dims, &sa), step_a, row_offset(index, dims, &sb), step_b);
            }
        })
    });
}

/// The operands of a broadcasting binary op.
#[derive(Clone, Copy)]
struct Operands<'a> {
    a: &'a [f32],
    a_shape: &'a Shape,
    b: &'a [f32],
    b_shape: &'a Shape,
}

/// `a op b` broadcast to `out_shape`. Each arithmetic op (and the residual `AddRelu`)
/// gets loops of its own, so they vectorize; the rest share one.
pub fn binary(
    mem: &HostMemory,
    op: BinaryOp,
    a: &[f32],
    a_shape: &Shape,
    b: &[f32],
    b_shape: &Shape,
    out_shape: &Shape,
) -> Vec<f32> {
    let operands = Operands { a, a_shape, b, b_shape };
    match op {
        BinaryOp::Add => broadcast_map(mem, operands, out_shape, |x, y| x + y),
        BinaryOp::Sub => broadcast_map(mem, operands, out_shape, |x, y| x - y),
        BinaryOp::Mul => broadcast_map(mem, operands, out_shape, |x, y| x * y),
        BinaryOp::Div => broadcast_map(mem, operands, out_shape, |x, y| x / y),
        BinaryOp::AddRelu => broadcast_map(mem, operands, out_shape, |x, y| BinaryOp::AddRelu.apply(x, y)),
        _ => broadcast_map(mem, operands, out_shape, move |x, y| op.apply(x, y)),
    }
}

/// `f(a, b)` broadcast to `out_shape`, a row (last dimension) at a time; the row shapes
/// that occur most (both operands along the row, or one of them constant along it)
/// have loops of their own.
fn broadcast_map(
    mem: &HostMemory,
    Operands { a, a_shape, b, b_shape }: Operands<'_>,
    out_shape: &Shape,
    f: impl Fn(f32, f32) -> f32 + Sync,
) -> Vec<f32> {
    if a_shape == b_shape {
        return map2(mem, a, b, f);
    }
    let mut out = mem.take(out_shape.numel());
    for_each_broadcast_row(&mut out, a_shape, b_shape, out_shape, |row, oa, sa, ob, sb| {
        let n = row.len();
        match (sa, sb) {
            (1, 1) => {
                row.iter_mut().zip(&a[oa..oa + n]).zip(&b[ob..ob + n]).for_each(|((o, x), y)| *o = f(*x, *y))
            }
            (1, 0) => row.iter_mut().zip(&a[oa..oa + n]).for_each(|(o, x)| *o = f(*x, b[ob])),
            (0, 1) => row.iter_mut().zip(&b[ob..ob + n]).for_each(|(o, y)| *o = f(a[oa], *y)),
            _ => row.iter_mut().enumerate().for_each(|(j, o)| *o = f(a[oa + j * sa], b[ob + j * sb])),
        }
    });
    out
}

/// `x` of `shape` repeated to fill `out_shape`.
pub fn broadcast_to(mem: &HostMemory, x: &[f32], shape: &Shape, out_shape: &Shape) -> Vec<f32> {
    let mut out = mem.take(out_shape.numel());
    for_each_broadcast_row(&mut out, shape, shape, out_shape, |row, ox, sx, _, _| match sx {
        0 => row.fill(x[ox]),
        1 => row.copy_from_slice(&x[ox..ox + row.len()]),
        _ => row.iter_mut().enumerate().for_each(|(j, o)| *o = x[ox + j * sx]),
    });
    out
}

/// Inverted dropout with the shared counter-based mask.
pub fn dropout(mem: &HostMemory, x: &[f32], p: f32, mask: DropoutMask) -> Vec<f32> {
    let scale = 1.0 / (1.0 - p);
    fill_indexed(mem, x.len(), |i| if mask.keeps(i as u32, p) { x[i] * scale } else { 0.0 })
}

#[cfg(test)]
mod tests {
    use super::merge_dimensions;

    #[test]
    fn dimensions_both_operands_step_through_as_one_are_merged() {
        // x [2, 3, 4, 5] against a per-channel [1, 3, 1, 1]: rows of 4·5.
        let (dims, sa, sb) = merge_dimensions(&[2, 3, 4, 5], vec![60, 20, 5, 1], vec![0, 1, 0, 0]);
        assert_eq!((dims, sa, sb), (vec![2, 3, 20], vec![60, 20, 1], vec![0, 1, 0]));
        // Same shapes: one dimension.
        let (dims, sa, sb) = merge_dimensions(&[2, 3, 4], vec![12, 4, 1], vec![12, 4, 1]);
        assert_eq!((dims, sa, sb), (vec![24], vec![1], vec![1]));
        // A transposed operand merges nothing.
        let (dims, _, _) = merge_dimensions(&[3, 4], vec![4, 1], vec![1, 3]);
        assert_eq!(dims, vec![3, 4]);
    }
}
