//! `MaxPool2d`: max over square windows of each channel.

use kiln_tensor::{Shape, Tensor};

use super::{expect_image, window_output};
use crate::{Mode, Module, Result, SummaryStyle};

/// Max-pooling; PyTorch's `nn.MaxPool2d`.
///
/// ```
/// use kiln_cpu::CpuDevice;
/// use kiln_nn::{MaxPool2d, Mode, Module};
/// use kiln_tensor::{Device, Tensor};
///
/// let pool = MaxPool2d::new(3, 2);
/// let y = pool.forward(&Tensor::zeros([1, 96, 54, 54], &Device::cpu()), Mode::Eval);
/// assert_eq!(y.dims(), &[1, 96, 26, 26]);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct MaxPool2d {
    kernel: usize,
    stride: usize,
    padding: usize,
}

impl MaxPool2d {
    /// `kernel × kernel` windows every `stride` pixels, no padding.
    pub fn new(kernel: usize, stride: usize) -> Self {
        assert!(kernel > 0 && stride > 0, "MaxPool2d: kernel and stride must be positive");
        MaxPool2d { kernel, stride, padding: 0 }
    }

    /// Sets the padding (at most half the kernel).
    pub fn with_padding(mut self, padding: usize) -> Self {
        assert!(2 * padding <= self.kernel, "MaxPool2d: padding must be at most half the kernel");
        self.padding = padding;
        self
    }

    fn label(&self) -> String {
        let pad = if self.padding > 0 { format!(" pad {}", self.padding) } else { String::new() };
        format!("max-pool {}/{}{pad}", self.kernel, self.stride)
    }
}

impl Module for MaxPool2d {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Tensor {
        x.max_pool2d(self.kernel, self.stride, self.padding)
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape> {
        let label = self.label();
        let (c, h, w) = expect_image(&label, input)?;
        let oh = window_output(&label, input, h, self.kernel, self.stride, self.padding)?;
        let ow = window_output(&label, input, w, self.kernel, self.stride, self.padding)?;
        Ok(Shape::from([c, oh, ow]))
    }

    fn summary_style(&self) -> SummaryStyle {
        SummaryStyle::Row(self.label())
    }
}
