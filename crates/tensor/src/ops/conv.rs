//! 2-D convolution (NCHW input, OIHW weight, optional bias, stride, zero padding) and
//! its gradients for input, weight and bias.

use super::{expect_f32, expect_rank, expect_same_device, through_activation};
use crate::autograd::BackwardRule;
use crate::{Activation, Conv2dGeometry, Tensor};

/// A `(vertical, horizontal)` pair for stride and padding; a plain `usize` means the
/// same both ways, as in PyTorch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size2d(pub usize, pub usize);

impl From<usize> for Size2d {
    fn from(both: usize) -> Self {
        Size2d(both, both)
    }
}

impl From<(usize, usize)> for Size2d {
    fn from((v, h): (usize, usize)) -> Self {
        Size2d(v, h)
    }
}

struct Conv2dBackward {
    geo: Conv2dGeometry,
    activation: Activation,
}

impl BackwardRule for Conv2dBackward {
    fn backward(&self, inputs: &[Tensor], output: &Tensor, grad: Tensor) -> Vec<Option<Tensor>> {
        let (x, w) = (&inputs[0], &inputs[1]);
        let backend = x.device().backend();
        let grad = &through_activation(self.activation, output, grad);
        let gx = x.requires_grad().then(|| {
            let storage = backend.conv2d_backward_input(grad.storage(), w.storage(), &self.geo);
            Tensor::from_storage(storage, x.shape().clone(), x.device())
        });
        let bias = inputs.get(2);
        let want_bias = bias.is_some_and(Tensor::requires_grad);
        let (gw, gb) = if w.requires_grad() || want_bias {
            let (gw, gb) = backend.conv2d_backward_weight(x.storage(), grad.storage(), &self.geo, want_bias);
            let gw = Tensor::from_storage(gw, w.shape().clone(), x.device());
            let gb = gb.map(|gb| Tensor::from_storage(gb, [self.geo.out_channels], x.device()));
            (Some(gw), gb)
        } else {
            (None, None)
        };
        let mut grads = vec![gx, gw];
        if bias.is_some() {
            grads.push(gb);
        }
        grads
    }
}

impl Tensor {
    /// Convolves this NCHW input with an OIHW `weight`, adds `bias` `[O]` when given:
    /// `x.conv2d(&w, Some(&b), 4, 0)` is AlexNet's first layer. Output height is
    /// `(H + 2·padding − kH) / stride + 1`, likewise the width.
    pub fn conv2d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        stride: impl Into<Size2d>,
        padding: impl Into<Size2d>,
    ) -> Tensor {
        self.conv2d_then(weight, bias, stride.into(), padding.into(), Activation::Identity)
    }

    /// `conv2d` followed by ReLU, as one op: the ReLU runs in the convolution's store
    /// (one pass over the output instead of two) and its gradient mask comes from the
    /// saved output. Equal to `x.conv2d(..).relu()`.
    pub fn conv2d_relu(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        stride: impl Into<Size2d>,
        padding: impl Into<Size2d>,
    ) -> Tensor {
        self.conv2d_then(weight, bias, stride.into(), padding.into(), Activation::Relu)
    }

    fn conv2d_then(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        stride: Size2d,
        padding: Size2d,
        activation: Activation,
    ) -> Tensor {
        expect_f32("conv2d", self);
        expect_f32("conv2d", weight);
        expect_same_device("conv2d", self, weight);
        expect_rank("conv2d", "the input (NCHW)", self, 4);
        expect_rank("conv2d", "the weight (OIHW)", weight, 4);
        let (x, w) = (self.dims(), weight.dims());
        assert_eq!(
            x[1],
            w[1],
            "conv2d: input {} has {} channels but weight {} expects {}",
            self.shape(),
            x[1],
            weight.shape(),
            w[1]
        );
        assert!(stride.0 > 0 && stride.1 > 0, "conv2d: stride must be positive, got {stride:?}");
        assert!(
            x[2] + 2 * padding.0 >= w[2] && x[3] + 2 * padding.1 >= w[3],
            "conv2d: kernel {}×{} does not fit input {} with padding {padding:?}",
            w[2],
            w[3],
            self.shape()
        );
        if let Some(b) = bias {
            expect_same_device("conv2d", self, b);
            assert_eq!(b.dims(), &[w[0]], "conv2d: bias must have shape [{}], got {}", w[0], b.shape());
        }
        let geo = Conv2dGeometry {
            batch: x[0],
            in_channels: x[1],
            in_h: x[2],
            in_w: x[3],
            out_channels: w[0],
            kernel_h: w[2],
            kernel_w: w[3],
            stride: (stride.0, stride.1),
            padding: (padding.0, padding.1),
        };
        let backend = self.device().backend();
        let storage =
            backend.conv2d(self.storage(), weight.storage(), bias.map(Tensor::storage), &geo, activation);
        let mut inputs = vec![self, weight];
        inputs.extend(bias);
        Tensor::from_op(storage, geo.output_shape(), &inputs, Conv2dBackward { geo, activation })
    }
}
