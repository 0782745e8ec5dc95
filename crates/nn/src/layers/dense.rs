//! `Dense`: a fully connected layer, `y = x·Wᵀ + b` with `W` stored `[out, in]`.

use kiln_tensor::{Shape, Tensor};

use super::fusion::ReluFusion;
use super::{visit_weight_and_bias, visit_weight_and_bias_mut};
use crate::{Dropout, Initializer, Mode, Module, NnError, Result, SummaryStyle};

/// Fully connected layer; PyTorch's `nn.Linear` (weight `[out, in]`).
///
/// ```
/// use kiln_cpu::CpuDevice;
/// use kiln_nn::{Dense, Initializer, Mode, Module};
/// use kiln_tensor::{Device, Tensor};
///
/// let device = Device::cpu();
/// let dense = Dense::new(&mut Initializer::new(&device, 0), 6400, 4096);
/// assert_eq!(dense.parameter_count(), 26_218_496);
/// let y = dense.forward(&Tensor::zeros([3, 6400], &device), Mode::Eval);
/// assert_eq!(y.dims(), &[3, 4096]);
/// ```
pub struct Dense {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Dense {
    /// `inputs → outputs` with a bias.
    pub fn new(init: &mut Initializer, inputs: usize, outputs: usize) -> Self {
        Dense { weight: init.weight([outputs, inputs], inputs, outputs), bias: Some(init.bias(outputs)) }
    }

    /// Drops the bias.
    pub fn without_bias(mut self) -> Self {
        self.bias = None;
        self
    }

    /// The weight `[out, in]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias `[out]`, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }
}

impl Module for Dense {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Tensor {
        x.linear(&self.weight, self.bias.as_ref())
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape> {
        let (outputs, inputs) = (self.weight.dims()[0], self.weight.dims()[1]);
        let Some((_, leading)) = input.dims().split_last().filter(|(last, _)| **last == inputs) else {
            return Err(NnError::Shape(format!(
                "dense {outputs}: expects [.., {inputs}] features, got {input}"
            )));
        };
        Ok(Shape::new(leading.iter().copied().chain([outputs]).collect::<Vec<_>>()))
    }

    fn summary_style(&self) -> SummaryStyle {
        SummaryStyle::Row(format!("dense {}", self.weight.dims()[0]))
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        visit_weight_and_bias(prefix, &self.weight, self.bias.as_ref(), f);
    }

    fn visit_parameters_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor)) {
        visit_weight_and_bias_mut(prefix, &mut self.weight, self.bias.as_mut(), f);
    }
}

impl ReluFusion for Dense {
    fn forward_relu(&self, x: &Tensor) -> Option<Tensor> {
        Some(x.linear_relu(&self.weight, self.bias.as_ref()))
    }

    fn forward_relu_dropout(&self, x: &Tensor, dropout: &Dropout, dropout_mode: Mode) -> Option<Tensor> {
        let mut output = x.dims().to_vec();
        *output.last_mut()? = self.weight.dims()[0];
        let output = Shape::new(output);
        let mask = dropout.mask(&output, dropout_mode)?;
        Some(x.linear_relu_dropout(&self.weight, self.bias.as_ref(), dropout.p(), mask))
    }
}
