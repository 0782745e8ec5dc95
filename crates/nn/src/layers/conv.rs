//! `Conv2d`: a 2-D convolution layer (OIHW weight, optional bias, stride, padding,
//! dilation, groups).

use kiln_tensor::{ConvOptions, Shape, Size2d, Tensor};

use super::fusion::ReluFusion;
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
    dilation: usize,
    groups: usize,
}

impl Conv2d {
    /// `out_channels` filters of `kernel × kernel` over `in_channels`, stride 1, no
    /// padding, with a bias.
    pub fn new(init: &mut Initializer, in_channels: usize, out_channels: usize, kernel: usize) -> Self {
        Conv2d::grouped(init, in_channels, out_channels, kernel, 1)
    }

    /// The same with the channels split into `groups` groups (PyTorch's `groups=`; the
    /// weight is `[out, in / groups, k, k]`); `groups = in_channels = out_channels` is a
    /// depthwise convolution.
    pub fn grouped(
        init: &mut Initializer,
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        groups: usize,
    ) -> Self {
        assert!(
            groups > 0 && in_channels.is_multiple_of(groups) && out_channels.is_multiple_of(groups),
            "Conv2d: {groups} groups do not divide {in_channels} input and {out_channels} output channels"
        );
        let (inputs, area) = (in_channels / groups, kernel * kernel);
        let weight =
            init.weight([out_channels, inputs, kernel, kernel], inputs * area, out_channels / groups * area);
        Conv2d { weight, bias: Some(init.bias(out_channels)), stride: 1, padding: 0, dilation: 1, groups }
    }

    /// Sets the spacing between kernel taps (PyTorch's `dilation=`).
    pub fn with_dilation(mut self, dilation: usize) -> Self {
        assert!(dilation > 0, "Conv2d: dilation must be positive");
        self.dilation = dilation;
        self
    }

    /// Whether this is a plain convolution, which the backends run fused with ReLU.
    fn is_plain(&self) -> bool {
        self.dilation == 1 && self.groups == 1
    }

    /// The kernel side as the input sees it, `(k − 1)·dilation + 1`.
    fn reach(&self, kernel: usize) -> usize {
        (kernel - 1) * self.dilation + 1
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
        if self.dilation != 1 {
            label += &format!(" dilation {}", self.dilation);
        }
        if self.groups != 1 {
            label += &format!(" groups {}", self.groups);
        }
        label + &format!(", {}", d[0])
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Tensor {
        if self.is_plain() {
            return x.conv2d(&self.weight, self.bias.as_ref(), self.stride, self.padding);
        }
        x.conv2d_with(&self.weight, self.bias.as_ref(), self.options())
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape> {
        let label = self.label();
        let (c, h, w) = expect_image(&label, input)?;
        let d = self.weight.dims();
        if c != d[1] * self.groups {
            return Err(NnError::Shape(format!(
                "{label}: expects {} input channels, got {input}",
                d[1] * self.groups
            )));
        }
        let oh = window_output(&label, input, h, self.reach(d[2]), self.stride, self.padding)?;
        let ow = window_output(&label, input, w, self.reach(d[3]), self.stride, self.padding)?;
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

impl Conv2d {
    /// The convolution times a per-output-channel `scale`, plus `shift`, then ReLU when
    /// `relu`, as one convolution: the scale folded into the kernel (`weight·scale`),
    /// the shift into the bias (`bias·scale + shift`). A batch norm in evaluation after
    /// the convolution is such a scale and shift, so the pair (and its ReLU) costs one
    /// pass over the activations instead of three.
    pub(crate) fn forward_scaled(&self, x: &Tensor, scale: &Tensor, shift: &Tensor, relu: bool) -> Tensor {
        let out_channels = self.weight.dims()[0];
        let weight = self.weight.mul(&scale.reshape([out_channels, 1, 1, 1]));
        let bias = match &self.bias {
            Some(bias) => bias.mul(scale).add(shift),
            None => shift.clone(),
        };
        match (self.is_plain(), relu) {
            (true, true) => x.conv2d_relu(&weight, Some(&bias), self.stride, self.padding),
            (true, false) => x.conv2d(&weight, Some(&bias), self.stride, self.padding),
            (false, _) => {
                let out = x.conv2d_with(&weight, Some(&bias), self.options());
                if relu { out.relu() } else { out }
            }
        }
    }

    fn options(&self) -> ConvOptions {
        ConvOptions {
            stride: Size2d(self.stride, self.stride),
            padding: Size2d(self.padding, self.padding),
            dilation: self.dilation,
            groups: self.groups,
        }
    }
}

impl ReluFusion for Conv2d {
    /// Only an ungrouped, undilated convolution has the fused kernel.
    fn forward_relu(&self, x: &Tensor) -> Option<Tensor> {
        self.is_plain().then(|| x.conv2d_relu(&self.weight, self.bias.as_ref(), self.stride, self.padding))
    }
}
