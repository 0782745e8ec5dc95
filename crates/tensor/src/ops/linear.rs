//! A dense layer's forward pass as one op: `x · wᵀ + b` with an optional fused ReLU and
//! dropout after it, computed by one backend kernel (bias, ReLU and dropout in the
//! product's store), and its gradients for the input, the weight and the bias.

use super::{expect_f32, expect_rank, expect_same_device, through_activation};
use crate::autograd::BackwardRule;
use crate::{Activation, DropoutMask, EpilogueDropout, MatmulDims, Tensor};

struct LinearBackward {
    activation: Activation,
    dropout: Option<EpilogueDropout>,
}

impl BackwardRule for LinearBackward {
    fn backward(&self, inputs: &[Tensor], output: &Tensor, grad: Tensor) -> Vec<Option<Tensor>> {
        let (x, w) = (&inputs[0], &inputs[1]);
        // Dropout's gradient is the same mask on the upstream gradient; the ReLU's mask
        // then comes from the saved output, which is positive exactly where the ReLU
        // passed a value and dropout kept it.
        let grad = match self.dropout {
            Some(EpilogueDropout { p, mask }) => grad.dropout_with(p, mask),
            None => grad,
        };
        let grad = &through_activation(self.activation, output, grad);
        // y = x·wᵀ: dx = dy·w, dw = dyᵀ·x, db = Σ over rows of dy.
        let gx = x.requires_grad().then(|| grad.matmul(w));
        let gw = w.requires_grad().then(|| grad.matmul_with(x, true, false));
        let mut grads = vec![gx, gw];
        if let Some(bias) = inputs.get(2) {
            grads.push(bias.requires_grad().then(|| grad.sum_axis(0, false)));
        }
        grads
    }
}

impl Tensor {
    /// `self · weightᵀ + bias`: a dense layer (PyTorch's `Linear`) with `self` `[rows,
    /// in]` (or `[.., in]`: leading dimensions are rows), `weight` `[out, in]` and
    /// `bias` `[out]`, in one kernel.
    pub fn linear(&self, weight: &Tensor, bias: Option<&Tensor>) -> Tensor {
        self.linear_then(weight, bias, Activation::Identity, None)
    }

    /// [`Tensor::linear`] followed by ReLU, as one op: the bias and the ReLU are applied
    /// in the product's store, and the ReLU's gradient mask comes from the saved output.
    /// Equal to `x.linear(..).relu()`.
    pub fn linear_relu(&self, weight: &Tensor, bias: Option<&Tensor>) -> Tensor {
        self.linear_then(weight, bias, Activation::Relu, None)
    }

    /// [`Tensor::linear_relu`] followed by inverted dropout with drop probability `p`
    /// and the mask window `mask`, as one op: bias, ReLU and dropout are applied in the
    /// product's store. Equal to `x.linear(..).relu().dropout_with(p, mask)`.
    pub fn linear_relu_dropout(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        p: f32,
        mask: DropoutMask,
    ) -> Tensor {
        assert!((0.0..1.0).contains(&p), "linear_relu_dropout: p must be in [0, 1), got {p}");
        let dropout = (p > 0.0).then_some(EpilogueDropout { p, mask });
        self.linear_then(weight, bias, Activation::Relu, dropout)
    }

    fn linear_then(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        activation: Activation,
        dropout: Option<EpilogueDropout>,
    ) -> Tensor {
        expect_f32("linear", self);
        expect_f32("linear", weight);
        expect_same_device("linear", self, weight);
        if self.shape().rank() > 2 {
            // Leading dimensions are rows (tokens of a sequence, positions): `[.., in]`
            // to `[.., out]` through one product of all rows.
            let dims = self.dims();
            let features = dims[dims.len() - 1];
            let rows = self.reshape([self.numel() / features.max(1), features]);
            let out = rows.linear_then(weight, bias, activation, dropout);
            let shape: Vec<usize> =
                dims[..dims.len() - 1].iter().copied().chain([weight.dims()[0]]).collect();
            return out.reshape(shape);
        }
        expect_rank("linear", "the input", self, 2);
        expect_rank("linear", "the weight ([out, in])", weight, 2);
        let (x, w) = (self.dims(), weight.dims());
        assert_eq!(
            x[1],
            w[1],
            "linear: input {} has {} features but weight {} expects {}",
            self.shape(),
            x[1],
            weight.shape(),
            w[1]
        );
        if let Some(b) = bias {
            expect_same_device("linear", self, b);
            assert_eq!(b.dims(), &[w[0]], "linear: bias must have shape [{}], got {}", w[0], b.shape());
        }
        let dims = MatmulDims { m: x[0], k: x[1], n: w[0], trans_a: false, trans_b: true };
        let backend = self.device().backend();
        let storage = backend.linear(
            self.storage(),
            weight.storage(),
            bias.map(Tensor::storage),
            dims,
            activation,
            dropout,
        );
        let mut inputs = vec![self, weight];
        inputs.extend(bias);
        Tensor::from_op(storage, [x[0], w[0]].into(), &inputs, LinearBackward { activation, dropout })
    }
}
