//! Average pooling over square windows of each channel, as a convolution of every
//! channel on its own with a constant `1/k²` kernel: the convolution kernels of each
//! backend do the work, forward and backward. Windows count padding as zeros
//! (PyTorch's default `count_include_pad=True`).

use super::expect_f32;
use crate::Tensor;

impl Tensor {
    /// Averages of `kernel × kernel` windows every `stride` pixels of `[N, C, H, W]`,
    /// with `padding` zeros around each plane (PyTorch's `avg_pool2d`).
    pub fn avg_pool2d(&self, kernel: usize, stride: usize, padding: usize) -> Tensor {
        expect_f32("avg_pool2d", self);
        let &[n, c, h, w] = self.dims() else {
            panic!("avg_pool2d: expected [N, C, H, W], got shape {}", self.shape())
        };
        assert!(kernel > 0 && stride > 0, "avg_pool2d: kernel and stride must be positive");
        assert!(
            h + 2 * padding >= kernel && w + 2 * padding >= kernel,
            "avg_pool2d: a {kernel}×{kernel} window does not fit shape {} with padding {padding}",
            self.shape()
        );
        let weight = Tensor::full([1, 1, kernel, kernel], 1.0 / (kernel * kernel) as f32, self.device());
        let planes = self.reshape([n * c, 1, h, w]).conv2d(&weight, None, stride, padding);
        let (oh, ow) = (planes.dims()[2], planes.dims()[3]);
        planes.reshape([n, c, oh, ow])
    }

    /// The mean of each channel's plane, `[N, C, H, W]` to `[N, C, 1, 1]` (global
    /// average pooling, PyTorch's `adaptive_avg_pool2d(x, 1)`).
    pub fn global_avg_pool2d(&self) -> Tensor {
        assert_eq!(
            self.shape().rank(),
            4,
            "global_avg_pool2d: expected [N, C, H, W], got shape {}",
            self.shape()
        );
        self.mean_axes(&[2, 3], true)
    }
}
