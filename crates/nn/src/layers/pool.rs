//! `MaxPool2d`: max over square windows of each channel.

use kiln_tensor::{Shape, Tensor};

use super::pool_window::PoolWindow;
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
    window: PoolWindow,
}

impl MaxPool2d {
    /// `kernel × kernel` windows every `stride` pixels, no padding.
    pub fn new(kernel: usize, stride: usize) -> Self {
        MaxPool2d { window: PoolWindow::new("MaxPool2d", kernel, stride) }
    }

    /// Sets the padding (at most half the kernel).
    pub fn with_padding(self, padding: usize) -> Self {
        MaxPool2d { window: self.window.with_padding("MaxPool2d", padding) }
    }
}

impl Module for MaxPool2d {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Tensor {
        let PoolWindow { kernel, stride, padding } = self.window;
        x.max_pool2d(kernel, stride, padding)
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape> {
        self.window.output_shape(&self.window.label("max-pool"), input)
    }

    fn summary_style(&self) -> SummaryStyle {
        SummaryStyle::Row(self.window.label("max-pool"))
    }
}
