//! Convolutions with groups (depthwise when every channel is its own group) and
//! dilation, as PyTorch's `conv2d(groups=, dilation=)`, built on the backends' dense
//! convolution: a dilated kernel is the kernel spread out with zeros between its taps
//! (a strided view, so its gradient is read back through the same view), and groups
//! are separate convolutions of channel slices, joined along the channels.

use super::Size2d;
use crate::autograd::BackwardRule;
use crate::{Shape, StridedView, Tensor};

/// The options of [`Tensor::conv2d_with`] beyond the weight and bias.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvOptions {
    /// Step between windows, `(vertical, horizontal)`.
    pub stride: Size2d,
    /// Zeros added on each side, `(vertical, horizontal)`.
    pub padding: Size2d,
    /// Spacing between kernel taps (1: adjacent).
    pub dilation: usize,
    /// Channel groups: input and output channels split into this many groups, each
    /// output group seeing only its input group (`in_channels` for depthwise).
    pub groups: usize,
}

impl Default for ConvOptions {
    /// Stride 1, no padding, no dilation, one group.
    fn default() -> Self {
        ConvOptions { stride: Size2d(1, 1), padding: Size2d(0, 0), dilation: 1, groups: 1 }
    }
}

/// The taps of a `[O, I, k, k]` kernel inside its dilated `[O, I, K, K]` form.
fn tap_view(dims: &[usize], dilation: usize) -> (StridedView, Shape) {
    let (k_h, k_w) = (dims[2], dims[3]);
    let (big_h, big_w) = ((k_h - 1) * dilation + 1, (k_w - 1) * dilation + 1);
    let view = StridedView {
        dims: dims.to_vec(),
        strides: vec![dims[1] * big_h * big_w, big_h * big_w, dilation * big_w, dilation],
        offset: 0,
    };
    (view, Shape::new([dims[0], dims[1], big_h, big_w]))
}

struct DilateBackward {
    taps: StridedView,
}

impl BackwardRule for DilateBackward {
    fn backward(&self, inputs: &[Tensor], _output: &Tensor, grad: Tensor) -> Vec<Option<Tensor>> {
        let kernel = &inputs[0];
        let storage = kernel.device().backend().gather_view(grad.storage(), &self.taps);
        vec![Some(Tensor::from_storage(storage, kernel.shape().clone(), kernel.device()))]
    }
}

impl Tensor {
    /// A `[O, I, k, k]` kernel with `dilation − 1` zeros between its taps, `[O, I,
    /// (k−1)·dilation + 1, …]`: convolving with it is convolving with dilation.
    pub fn dilate_kernel(&self, dilation: usize) -> Tensor {
        assert!(
            self.shape().rank() == 4 && dilation > 0,
            "dilate_kernel: expected a kernel [O, I, kh, kw] and dilation ≥ 1, got shape {} and {dilation}",
            self.shape()
        );
        if dilation == 1 {
            return self.clone();
        }
        let (taps, shape) = tap_view(self.dims(), dilation);
        let spread = super::views::placed_in_zeros(self, &shape, &taps);
        Tensor::from_op(spread.storage().clone(), shape, &[self], DilateBackward { taps })
    }

    /// Convolution with [`ConvOptions`]: groups and dilation besides stride and padding
    /// (PyTorch's `conv2d`); `weight` is `[out, in / groups, k, k]`, `bias` `[out]`.
    pub fn conv2d_with(&self, weight: &Tensor, bias: Option<&Tensor>, options: ConvOptions) -> Tensor {
        let ConvOptions { stride, padding, dilation, groups } = options;
        let (x, w) = (self.dims(), weight.dims());
        assert!(
            x.len() == 4
                && w.len() == 4
                && groups > 0
                && x[1] == w[1] * groups
                && w[0].is_multiple_of(groups),
            "conv2d: input {} and weight {} do not fit {groups} groups (the weight is [out, in / groups, k, k])",
            self.shape(),
            weight.shape()
        );
        let kernel = weight.dilate_kernel(dilation);
        if groups == 1 {
            return self.conv2d(&kernel, bias, stride, padding);
        }
        let (in_group, out_group) = (w[1], w[0] / groups);
        let parts: Vec<Tensor> = (0..groups)
            .map(|g| {
                let bias = bias.map(|b| b.narrow(0, g * out_group, out_group));
                let input = self.narrow(1, g * in_group, in_group);
                input.conv2d(&kernel.narrow(0, g * out_group, out_group), bias.as_ref(), stride, padding)
            })
            .collect();
        Tensor::cat(&parts.iter().collect::<Vec<_>>(), 1)
    }
}
