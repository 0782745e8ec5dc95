//! 2-D max-pooling over NCHW input (square window, stride, padding that never wins),
//! with the argmax stored so the backward pass routes each gradient to its maximum.

use super::{expect_f32, expect_rank};
use crate::autograd::BackwardRule;
use crate::{Pool2dGeometry, StorageRef, Tensor};

struct MaxPool2dBackward {
    geo: Pool2dGeometry,
    argmax: StorageRef,
}

impl BackwardRule for MaxPool2dBackward {
    fn backward(&self, inputs: &[Tensor], _output: &Tensor, grad: Tensor) -> Vec<Option<Tensor>> {
        let grad = &grad;
        let x = &inputs[0];
        let storage = x.device().backend().max_pool2d_backward(grad.storage(), &self.argmax, &self.geo);
        vec![Some(Tensor::from_storage(storage, x.shape().clone(), x.device()))]
    }
}

impl Tensor {
    /// Max over `kernel × kernel` windows every `stride` pixels of this NCHW input, with
    /// `padding` on every side (as PyTorch's `max_pool2d`; padding must be at most half
    /// the kernel so that every window holds a real pixel).
    pub fn max_pool2d(&self, kernel: usize, stride: usize, padding: usize) -> Tensor {
        expect_f32("max_pool2d", self);
        expect_rank("max_pool2d", "the input (NCHW)", self, 4);
        assert!(kernel > 0 && stride > 0, "max_pool2d: kernel and stride must be positive");
        assert!(2 * padding <= kernel, "max_pool2d: padding {padding} exceeds half the kernel {kernel}");
        let d = self.dims();
        assert!(
            d[2] + 2 * padding >= kernel && d[3] + 2 * padding >= kernel,
            "max_pool2d: window {kernel}×{kernel} does not fit input {}",
            self.shape()
        );
        let geo =
            Pool2dGeometry { batch: d[0], channels: d[1], in_h: d[2], in_w: d[3], kernel, stride, padding };
        let backend = self.device().backend();
        if !(crate::autograd::is_recording() && self.requires_grad()) {
            // Nothing will differentiate this: no argmax to find or keep.
            return Tensor::from_storage(
                backend.max_pool2d_values(self.storage(), &geo),
                geo.output_shape(),
                self.device(),
            );
        }
        let (values, argmax) = backend.max_pool2d(self.storage(), &geo);
        Tensor::from_op(values, geo.output_shape(), &[self], MaxPool2dBackward { geo, argmax })
    }
}
