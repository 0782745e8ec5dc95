//! Average pooling layers with `torch.nn`'s names: `AvgPool2d` (square windows, zero
//! padding counted, as PyTorch's default) and `AdaptiveAvgPool2d` (a fixed output size;
//! `1` is global average pooling).

use kiln_tensor::{Shape, Tensor};

use super::expect_image;
use super::pool_window::PoolWindow;
use crate::{Mode, Module, NnError, Result, SummaryStyle};

/// Average pooling over `kernel × kernel` windows every `stride` pixels
/// (`torch.nn.AvgPool2d`).
#[derive(Clone, Copy, Debug)]
pub struct AvgPool2d {
    window: PoolWindow,
}

impl AvgPool2d {
    /// Windows of `kernel × kernel` every `stride` pixels, no padding.
    pub fn new(kernel: usize, stride: usize) -> Self {
        AvgPool2d { window: PoolWindow::new("AvgPool2d", kernel, stride) }
    }

    /// Sets the zero padding (at most half the kernel).
    pub fn with_padding(self, padding: usize) -> Self {
        AvgPool2d { window: self.window.with_padding("AvgPool2d", padding) }
    }
}

impl Module for AvgPool2d {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Tensor {
        let PoolWindow { kernel, stride, padding } = self.window;
        x.avg_pool2d(kernel, stride, padding)
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape> {
        self.window.output_shape(&self.window.label("avg-pool"), input)
    }

    fn summary_style(&self) -> SummaryStyle {
        SummaryStyle::Row(self.window.label("avg-pool"))
    }
}

/// Average pooling to a fixed `output × output` size (`torch.nn.AdaptiveAvgPool2d`):
/// `1` averages each channel's whole plane (global average pooling, as ResNet's head);
/// other sizes must divide the input's height and width, which then pool in equal
/// windows.
#[derive(Clone, Copy, Debug)]
pub struct AdaptiveAvgPool2d {
    output: usize,
}

impl AdaptiveAvgPool2d {
    /// Pools every plane to `output × output`.
    pub fn new(output: usize) -> Self {
        assert!(output > 0, "AdaptiveAvgPool2d: the output size must be positive");
        AdaptiveAvgPool2d { output }
    }

    /// The window of an `h × w` plane, or why there is none.
    fn window(&self, input: &Shape, h: usize, w: usize) -> Result<usize> {
        let o = self.output;
        if h != w || !h.is_multiple_of(o) {
            return Err(NnError::Shape(format!(
                "adaptive avg-pool {o}: needs square planes whose side {o} divides, got {input}"
            )));
        }
        Ok(h / o)
    }
}

impl Module for AdaptiveAvgPool2d {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Tensor {
        if self.output == 1 {
            return x.global_avg_pool2d();
        }
        let dims = x.dims();
        let input = Shape::from(&dims[1..]);
        let window =
            self.window(&input, dims[2], dims[3]).unwrap_or_else(|err| panic!("AdaptiveAvgPool2d: {err}"));
        x.avg_pool2d(window, window, 0)
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape> {
        let (c, h, w) = expect_image("adaptive avg-pool", input)?;
        if self.output > 1 {
            self.window(input, h, w)?;
        }
        Ok(Shape::from([c, self.output, self.output]))
    }

    fn summary_style(&self) -> SummaryStyle {
        SummaryStyle::Row(format!("adaptive avg-pool {}", self.output))
    }
}
