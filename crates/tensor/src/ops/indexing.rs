//! Picking positions along an axis by an i32 index tensor, with PyTorch's names and
//! semantics: `index_select` (one index list for the whole tensor), `gather` (an index
//! per output element), `scatter_add` (their adjoint, which is also each one's
//! gradient), and the negative log-likelihood loss built on `gather`. An index outside
//! the axis picks NaN and scatters nothing (checking it would read the indices back
//! from the device).

use super::{expect_f32, expect_same_device};
use crate::autograd::BackwardRule;
use crate::{AxisIndexing, DType, Shape, Tensor};

/// Panics unless `index` is an i32 tensor on `x`'s device.
fn expect_index(op: &str, x: &Tensor, index: &Tensor) {
    assert_eq!(index.dtype(), DType::I32, "{op}: the index must be an i32 tensor, got {index:?}");
    expect_same_device(op, x, index);
}

struct GatherBackward {
    index: Tensor,
    geometry: AxisIndexing,
}

impl BackwardRule for GatherBackward {
    fn backward(&self, inputs: &[Tensor], _output: &Tensor, grad: Tensor) -> Vec<Option<Tensor>> {
        let x = &inputs[0];
        let storage =
            x.device().backend().scatter_add_axis(grad.storage(), self.index.storage(), self.geometry);
        vec![Some(Tensor::from_storage(storage, x.shape().clone(), x.device()))]
    }
}

struct ScatterAddBackward {
    index: Tensor,
    geometry: AxisIndexing,
}

impl BackwardRule for ScatterAddBackward {
    fn backward(&self, inputs: &[Tensor], _output: &Tensor, grad: Tensor) -> Vec<Option<Tensor>> {
        let src = &inputs[0];
        let storage = src.device().backend().gather_axis(grad.storage(), self.index.storage(), self.geometry);
        vec![Some(Tensor::from_storage(storage, src.shape().clone(), src.device()))]
    }
}

impl Tensor {
    /// Picks along `axis` through `geometry` into a tensor of `shape`.
    fn gather_with(&self, index: &Tensor, geometry: AxisIndexing, shape: Shape) -> Tensor {
        let storage = self.device().backend().gather_axis(self.storage(), index.storage(), geometry);
        Tensor::from_op(storage, shape, &[self], GatherBackward { index: index.clone(), geometry })
    }

    /// The positions `indices` (i32, any shape, read flat) of `axis`, in that order
    /// (PyTorch's `index_select`); the axis's length becomes the number of indices.
    pub fn index_select(&self, axis: usize, indices: &Tensor) -> Tensor {
        expect_f32("index_select", self);
        expect_index("index_select", self, indices);
        assert!(
            axis < self.shape().rank(),
            "index_select: axis {axis} out of range for shape {}",
            self.shape()
        );
        let split = self.shape().split_at_axis(axis);
        let count = indices.numel();
        let geometry = AxisIndexing { split, count, outer_stride: 0, count_stride: 1, inner_stride: 0 };
        let mut dims = self.dims().to_vec();
        dims[axis] = count;
        self.gather_with(indices, geometry, Shape::new(dims))
    }

    /// `out[.., j, ..] = self[.., index[.., j, ..], ..]` along `axis` (PyTorch's
    /// `gather`); `index` has this tensor's shape except along `axis`.
    pub fn gather(&self, axis: usize, index: &Tensor) -> Tensor {
        expect_f32("gather", self);
        expect_index("gather", self, index);
        let geometry = self.indexing("gather", axis, index);
        self.gather_with(index, geometry, index.shape().clone())
    }

    /// This tensor plus `src` added at the positions of `axis` that `index` names
    /// (PyTorch's `scatter_add`; `index` and `src` share a shape, this tensor's except
    /// along `axis`). Repeated indices add up, in order.
    pub fn scatter_add(&self, axis: usize, index: &Tensor, src: &Tensor) -> Tensor {
        expect_f32("scatter_add", self);
        expect_f32("scatter_add", src);
        expect_index("scatter_add", self, index);
        assert_eq!(
            index.shape(),
            src.shape(),
            "scatter_add: index {} and source {} differ",
            index.shape(),
            src.shape()
        );
        let geometry = self.indexing("scatter_add", axis, index);
        let storage = self.device().backend().scatter_add_axis(src.storage(), index.storage(), geometry);
        let scattered = Tensor::from_op(
            storage,
            self.shape().clone(),
            &[src],
            ScatterAddBackward { index: index.clone(), geometry },
        );
        self.add(&scattered)
    }

    /// The geometry of `gather`/`scatter_add` along `axis` with a full `index`.
    fn indexing(&self, op: &str, axis: usize, index: &Tensor) -> AxisIndexing {
        let rank = self.shape().rank();
        let fits = axis < rank
            && index.shape().rank() == rank
            && (0..rank).all(|a| a == axis || index.dims()[a] == self.dims()[a]);
        assert!(fits, "{op}: index {} does not fit shape {} along axis {axis}", index.shape(), self.shape());
        let split = self.shape().split_at_axis(axis);
        let count = index.dims()[axis];
        AxisIndexing {
            split,
            count,
            outer_stride: count * split.inner,
            count_stride: split.inner,
            inner_stride: 1,
        }
    }

    /// Mean negative log-likelihood of log-probabilities `[N, classes]` against i32
    /// labels `[N]` (PyTorch's `nll_loss`; with `log_softmax` it is `cross_entropy`).
    pub fn nll_loss(&self, labels: &Tensor) -> Tensor {
        assert!(
            self.shape().rank() == 2 && labels.dims() == [self.dims()[0]],
            "nll_loss: expected log-probabilities [N, classes] and labels [N], got shapes {} and {}",
            self.shape(),
            labels.shape()
        );
        self.gather(1, &labels.reshape([self.dims()[0], 1])).mean().neg()
    }
}
