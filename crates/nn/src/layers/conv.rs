//! `Conv2d`: a 2-D convolution layer (OIHW weight, optional bias, stride, padding).

use kiln_tensor::{Shape, Tensor};

use super::{expect_image, visit_weight_and_bias, visit_weight_and_bias_mut, window_output};
use crate::{Initializer, Mode, Module, NnError, Result, SummaryStyle};

/// 2-D convolution over NCHW input; PyTorch's `nn.Conv2d` (square kernel).
///
/// ```
/// use kiln_cpu::CpuDevice;
/// use kiln_nn::{Conv2d, Initializer, Mode, Module};
/// use kiln_tensor::{Device, Tensor};
///
/// let device = Device::cpu();
/// let conv = Conv2d::new(&mut Initializer::new(&device, 0), 1, 96, 11).with_stride(4);
/// let y = conv.forward(&Tensor::zeros([2, 1, 224, 224], &device), Mode::Eval);
/// assert_eq!(y.dims(), &[2, 96, 54, 54]);
/// ```
pub struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    stride: usize,
    padding: usize,
}

impl Conv2d {
    /// `out_channels` filters of `kernel × kernel` over `in_channels`, stride 1, no
    /// padding, with a bias.
    pub fn new(init: &mut Initializer, in_channels: usize, out_channels: usize, kernel: usize) -> Self {
        let area = kernel * kernel;
        let weight =
            init.weight([out_channels, in_channels, kernel, kernel], in_channels * area, out_channels * area);
        Conv2d { weight, bias: Some(init.bias(out_channels)), stride: 1, padding: 0 }
    }

    /// Sets the stride.
    pub fn with_stride(mut self, stride: usize) -> Self {
        assert!(stride > 0, "Conv2d: stride must be positive");
        self.stride = stride;
        self
    }

    /// Sets the zero padding on every side.
    pub fn with_padding(mut self, padding: usize) -> Self {
        self.padding = padding;
        self
    }

    /// Drops the bias.
    pub fn without_bias(mut self) -> Self {
        self.bias = None;
        self
    }

    /// The weight `[out, in, k, k]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias `[out]`, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    fn label(&self) -> String {
        let d = self.weight.dims();
        let mut label = format!("conv {}×{}", d[2], d[3]);
        if self.stride != 1 {
            label += &format!("/{}", self.stride);
        }
        if self.padding != 0 {
            label += &format!(" pad {}", self.padding);
        }
        label + &format!(", {}", d[0])
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Tensor {
        x.conv2d(&self.weight, self.bias.as_ref(), self.stride, self.padding)
    }

    fn forward_relu(&self, x: &Tensor, _mode: Mode) -> Option<Tensor> {
        Some(x.conv2d_relu(&self.weight, self.bias.as_ref(), self.stride, self.padding))
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape> {
        let label = self.label();
        let (c, h, w) = expect_image(&label, input)?;
        let d = self.weight.dims();
        if c != d[1] {
            return Err(NnError::Shape(format!("{label}: expects {} input channels, got {input}", d[1])));
        }
        let oh = window_output(&label, input, h, d[2], self.stride, self.padding)?;
        let ow = window_output(&label, input, w, d[3], self.stride, self.padding)?;
        Ok(Shape::from([d[0], oh, ow]))
    }

    fn summary_style(&self) -> SummaryStyle {
        SummaryStyle::Row(self.label())
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        visit_weight_and_bias(prefix, &self.weight, self.bias.as_ref(), f);
    }

    fn visit_parameters_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor)) {
        visit_weight_and_bias_mut(prefix, &mut self.weight, self.bias.as_mut(), f);
    }
}
