//! Ops that change the shape but not the values: reshape, flatten, broadcast_to, and
//! `sum_to` (the reduction that undoes a broadcast, used by gradients).

use super::expect_f32;
use crate::autograd::BackwardRule;
use crate::{Shape, Tensor};

struct ReshapeBackward;

impl BackwardRule for ReshapeBackward {
    fn backward(&self, inputs: &[Tensor], _output: &Tensor, grad: Tensor) -> Vec<Option<Tensor>> {
        let grad = &grad;
        vec![Some(grad.reshape(inputs[0].shape().clone()))]
    }
}

struct BroadcastBackward;

impl BackwardRule for BroadcastBackward {
    fn backward(&self, inputs: &[Tensor], _output: &Tensor, grad: Tensor) -> Vec<Option<Tensor>> {
        let grad = &grad;
        vec![Some(grad.sum_to(inputs[0].shape()))]
    }
}

impl Tensor {
    /// The same values with another shape of the same element count (no copy).
    pub fn reshape(&self, shape: impl Into<Shape>) -> Tensor {
        let shape = shape.into();
        assert_eq!(
            shape.numel(),
            self.numel(),
            "reshape: cannot view shape {} ({} elements) as {shape} ({} elements)",
            self.shape(),
            self.numel(),
            shape.numel()
        );
        Tensor::from_op(self.storage().clone(), shape, &[self], ReshapeBackward)
    }

    /// Flattens the dimensions from `start_axis` on into one: `flatten(1)` turns
    /// `[N, C, H, W]` into `[N, C·H·W]`, `flatten(0)` into `[N·C·H·W]`.
    pub fn flatten(&self, start_axis: usize) -> Tensor {
        let dims = self.dims();
        assert!(
            start_axis < dims.len().max(1),
            "flatten: axis {start_axis} out of range for shape {}",
            self.shape()
        );
        let mut flat: Vec<usize> = dims[..start_axis].to_vec();
        flat.push(dims[start_axis..].iter().product());
        self.reshape(flat)
    }

    /// Repeats the values along broadcast dimensions to fill `shape`.
    pub fn broadcast_to(&self, shape: impl Into<Shape>) -> Tensor {
        expect_f32("broadcast_to", self);
        let shape = shape.into();
        assert_eq!(
            self.shape().broadcast(&shape).as_ref(),
            Some(&shape),
            "broadcast_to: shape {} does not broadcast to {shape}",
            self.shape()
        );
        let storage = self.device().backend().broadcast_to(self.storage(), self.shape(), &shape);
        Tensor::from_op(storage, shape, &[self], BroadcastBackward)
    }

    /// Sums over the dimensions along which `shape` was broadcast to this tensor's shape,
    /// giving a tensor of `shape`: the gradient of a broadcast.
    pub fn sum_to(&self, shape: &Shape) -> Tensor {
        if self.shape() == shape {
            return self.clone();
        }
        let rank = self.shape().rank();
        assert!(shape.rank() <= rank, "sum_to: cannot reduce shape {} to {shape}", self.shape());
        let lead = rank - shape.rank();
        let mut out = self.clone();
        for axis in (0..rank).rev() {
            let target = if axis < lead { 1 } else { shape.dim(axis - lead) };
            if target == 1 && out.dims()[axis] != 1 {
                out = out.sum_axis(axis, true);
            } else {
                assert_eq!(
                    target,
                    out.dims()[axis],
                    "sum_to: cannot reduce shape {} to {shape}",
                    self.shape()
                );
            }
        }
        out.reshape(shape.clone())
    }
}
