//! Ops that rearrange values without computing on them, with PyTorch's names and
//! semantics: `permute`, `transpose`, `narrow` (slicing), `cat`, `stack`, `split`,
//! `chunk`, `unsqueeze`, `squeeze`. Each is a copy through a [`StridedView`] (the
//! backends' `gather_view` and `scatter_view`), and so is each backward rule:
//! a permutation's gradient is the inverse permutation, a slice's gradient is written
//! into zeros at the slice, a concatenation's gradient is cut back into slices.

use super::expect_f32;
use crate::autograd::BackwardRule;
use crate::{Shape, StridedView, Tensor};

/// The window of `shape`'s contiguous storage whose axis `k` is the tensor's axis
/// `order[k]`.
fn permuted_view(shape: &Shape, order: &[usize]) -> StridedView {
    let strides = shape.strides();
    StridedView {
        dims: order.iter().map(|&a| shape.dim(a)).collect(),
        strides: order.iter().map(|&a| strides[a]).collect(),
        offset: 0,
    }
}

/// The window of `shape`'s contiguous storage that is `len` positions of `axis` from
/// `start`.
fn slice_view(shape: &Shape, axis: usize, start: usize, len: usize) -> StridedView {
    let strides = shape.strides();
    let mut dims = shape.dims().to_vec();
    dims[axis] = len;
    let offset = start * strides[axis];
    StridedView { dims, strides, offset }
}

/// `src`'s values written into zeros of `shape` at `view` (the gradient of a slice, a
/// kernel spread out for dilation).
pub(super) fn placed_in_zeros(src: &Tensor, shape: &Shape, view: &StridedView) -> Tensor {
    let zeros = Tensor::zeros(shape.clone(), src.device());
    src.device().backend().scatter_view(zeros.storage(), view, src.storage());
    zeros
}

struct PermuteBackward {
    /// The inverse permutation.
    inverse: Vec<usize>,
}

impl BackwardRule for PermuteBackward {
    fn backward(&self, _inputs: &[Tensor], _output: &Tensor, grad: Tensor) -> Vec<Option<Tensor>> {
        vec![Some(grad.permute(&self.inverse))]
    }
}

struct NarrowBackward {
    axis: usize,
    start: usize,
}

impl BackwardRule for NarrowBackward {
    fn backward(&self, inputs: &[Tensor], _output: &Tensor, grad: Tensor) -> Vec<Option<Tensor>> {
        let shape = inputs[0].shape();
        let view = slice_view(shape, self.axis, self.start, grad.dims()[self.axis]);
        vec![Some(placed_in_zeros(&grad, shape, &view))]
    }
}

struct CatBackward {
    axis: usize,
}

impl BackwardRule for CatBackward {
    fn backward(&self, inputs: &[Tensor], _output: &Tensor, grad: Tensor) -> Vec<Option<Tensor>> {
        let mut start = 0;
        inputs
            .iter()
            .map(|input| {
                let len = input.dims()[self.axis];
                let part = grad.narrow(self.axis, start, len);
                start += len;
                Some(part)
            })
            .collect()
    }
}

impl Tensor {
    /// The axes reordered: axis `k` of the result is axis `order[k]` of this tensor
    /// (PyTorch's `permute`; the values are copied).
    pub fn permute(&self, order: &[usize]) -> Tensor {
        expect_f32("permute", self);
        let rank = self.shape().rank();
        let mut seen = vec![false; rank];
        let valid =
            order.len() == rank && order.iter().all(|&a| a < rank && !std::mem::replace(&mut seen[a], true));
        assert!(valid, "permute: {order:?} is not a permutation of the axes of shape {}", self.shape());
        let view = permuted_view(self.shape(), order);
        let storage = self.device().backend().gather_view(self.storage(), &view);
        let mut inverse = vec![0; rank];
        order.iter().enumerate().for_each(|(k, &a)| inverse[a] = k);
        Tensor::from_op(storage, Shape::new(view.dims), &[self], PermuteBackward { inverse })
    }

    /// Axes `a` and `b` swapped (PyTorch's `transpose`).
    pub fn transpose(&self, a: usize, b: usize) -> Tensor {
        let rank = self.shape().rank();
        assert!(a < rank && b < rank, "transpose: axes {a} and {b} out of range for shape {}", self.shape());
        let mut order: Vec<usize> = (0..rank).collect();
        order.swap(a, b);
        self.permute(&order)
    }

    /// Positions `start..start + len` of `axis` (PyTorch's `narrow`, `x[.., start:start+len, ..]`).
    pub fn narrow(&self, axis: usize, start: usize, len: usize) -> Tensor {
        expect_f32("narrow", self);
        let shape = self.shape();
        assert!(
            axis < shape.rank() && start + len <= shape.dim(axis),
            "narrow: positions {start}..{} of axis {axis} are outside shape {shape}",
            start + len
        );
        let view = slice_view(shape, axis, start, len);
        let storage = self.device().backend().gather_view(self.storage(), &view);
        Tensor::from_op(storage, Shape::new(view.dims), &[self], NarrowBackward { axis, start })
    }

    /// The tensors joined along `axis` (PyTorch's `cat`); every other dimension must
    /// agree.
    pub fn cat(tensors: &[&Tensor], axis: usize) -> Tensor {
        let first = tensors.first().expect("cat: no tensors to join");
        let mut dims = first.dims().to_vec();
        assert!(axis < dims.len(), "cat: axis {axis} out of range for shape {}", first.shape());
        dims[axis] = 0;
        for t in tensors {
            expect_f32("cat", t);
            super::expect_same_device("cat", first, t);
            let fits = t.shape().rank() == dims.len()
                && t.dims().iter().enumerate().all(|(k, &d)| k == axis || d == first.dims()[k]);
            assert!(fits, "cat: shape {} does not join shape {} along axis {axis}", t.shape(), first.shape());
            dims[axis] += t.dims()[axis];
        }
        let shape = Shape::new(dims);
        let out = Tensor::zeros(shape.clone(), first.device());
        let mut start = 0;
        for t in tensors {
            let len = t.dims()[axis];
            if t.numel() > 0 {
                let view = slice_view(&shape, axis, start, len);
                first.device().backend().scatter_view(out.storage(), &view, t.storage());
            }
            start += len;
        }
        Tensor::from_op(out.storage().clone(), shape, tensors, CatBackward { axis })
    }

    /// The tensors, all of one shape, stacked along a new `axis` (PyTorch's `stack`).
    pub fn stack(tensors: &[&Tensor], axis: usize) -> Tensor {
        let first = tensors.first().expect("stack: no tensors to stack");
        for t in tensors {
            assert_eq!(
                t.shape(),
                first.shape(),
                "stack: shape {} differs from shape {}",
                t.shape(),
                first.shape()
            );
        }
        let expanded: Vec<Tensor> = tensors.iter().map(|t| t.unsqueeze(axis)).collect();
        Tensor::cat(&expanded.iter().collect::<Vec<_>>(), axis)
    }

    /// Pieces of `size` positions along `axis`, the last one shorter when `size` does
    /// not divide the axis (PyTorch's `split` with an int).
    pub fn split(&self, size: usize, axis: usize) -> Vec<Tensor> {
        assert!(size > 0, "split: pieces of 0 positions");
        assert!(axis < self.shape().rank(), "split: axis {axis} out of range for shape {}", self.shape());
        let len = self.dims()[axis];
        (0..len).step_by(size).map(|start| self.narrow(axis, start, size.min(len - start))).collect()
    }

    /// `chunks` pieces along `axis` of `⌈len / chunks⌉` positions each, fewer when the
    /// axis runs out first (PyTorch's `chunk`).
    pub fn chunk(&self, chunks: usize, axis: usize) -> Vec<Tensor> {
        assert!(chunks > 0, "chunk: 0 chunks");
        assert!(axis < self.shape().rank(), "chunk: axis {axis} out of range for shape {}", self.shape());
        self.split(self.dims()[axis].div_ceil(chunks).max(1), axis)
    }

    /// A new axis of length 1 at `axis` (no copy).
    pub fn unsqueeze(&self, axis: usize) -> Tensor {
        let mut dims = self.dims().to_vec();
        assert!(axis <= dims.len(), "unsqueeze: axis {axis} out of range for shape {}", self.shape());
        dims.insert(axis, 1);
        self.reshape(dims)
    }

    /// Axis `axis`, of length 1, removed (no copy).
    pub fn squeeze(&self, axis: usize) -> Tensor {
        let mut dims = self.dims().to_vec();
        assert!(
            axis < dims.len() && dims[axis] == 1,
            "squeeze: axis {axis} of shape {} is not of length 1",
            self.shape()
        );
        dims.remove(axis);
        self.reshape(dims)
    }
}
