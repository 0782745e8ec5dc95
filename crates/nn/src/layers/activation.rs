//! Activation layers, named as in `torch.nn`: `ReLU`, `Sigmoid`, `Tanh`, `GELU` (exact
//! or tanh-approximated), `SiLU`, `LeakyReLU`, `Softplus`, `ELU` and `Identity`. Each is
//! its tensor function of `unary_ops.rs` as a `Module`; none has parameters. In
//! summaries they fold into the row of the layer they follow.
//!
//! ```
//! use kiln_cpu::CpuDevice;
//! use kiln_nn::{GELU, LeakyReLU, Mode, Module, ReLU, Sigmoid, Tanh};
//! use kiln_tensor::{Device, Tensor};
//!
//! let x = Tensor::from_vec([3], vec![-1.0, 0.0, 2.0], &Device::cpu());
//! assert_eq!(ReLU.forward(&x, Mode::Eval).to_vec().unwrap(), vec![0.0, 0.0, 2.0]);
//! assert_eq!(Sigmoid.forward(&x, Mode::Eval).to_vec().unwrap()[1], 0.5);
//! assert_eq!(Tanh.forward(&x, Mode::Eval).to_vec().unwrap()[1], 0.0);
//! assert_eq!(LeakyReLU::new(0.1).forward(&x, Mode::Eval).to_vec().unwrap()[0], -0.1);
//! let gelu = GELU::default().forward(&x, Mode::Eval).to_vec().unwrap();
//! assert!((gelu[2] - 1.9545).abs() < 1e-4);
//! ```

use kiln_tensor::{Shape, Tensor, UnaryOp};

use crate::{Mode, Module, Result, SummaryStyle};

macro_rules! activation {
    ($(#[$doc:meta])* $name:ident, $method:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default)]
        pub struct $name;

        impl Module for $name {
            fn forward(&self, x: &Tensor, _mode: Mode) -> Tensor {
                x.$method()
            }

            fn output_shape(&self, input: &Shape) -> Result<Shape> {
                Ok(input.clone())
            }

            fn summary_style(&self) -> SummaryStyle {
                SummaryStyle::Fold(String::new())
            }
        }
    };
}

activation!(
    /// `max(x, 0)` elementwise.
    ReLU,
    relu
);
activation!(
    /// The logistic function elementwise.
    Sigmoid,
    sigmoid
);
activation!(
    /// Hyperbolic tangent elementwise.
    Tanh,
    tanh
);
activation!(
    /// SiLU (swish), `x·σ(x)` elementwise.
    SiLU,
    silu
);
activation!(
    /// Softplus, `ln(1 + e^x)` elementwise (`x` itself above 20, as PyTorch's defaults).
    Softplus,
    softplus
);

/// The input unchanged (`torch.nn.Identity`): a placeholder where a model's
/// configuration leaves a layer out.
#[derive(Clone, Copy, Debug, Default)]
pub struct Identity;

impl Module for Identity {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Tensor {
        x.clone()
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape> {
        Ok(input.clone())
    }

    fn summary_style(&self) -> SummaryStyle {
        SummaryStyle::Fold(String::new())
    }
}

/// How [`GELU`] computes `Φ(x)` (PyTorch's `approximate` argument).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GeluApproximation {
    /// The exact normal CDF through `erf` (`approximate='none'`).
    #[default]
    None,
    /// `0.5(1 + tanh(√(2/π)(x + 0.044715x³)))` (`approximate='tanh'`).
    Tanh,
}

/// GELU, `x·Φ(x)` elementwise (`torch.nn.GELU`); `GELU::default()` is the exact form.
#[derive(Clone, Copy, Debug, Default)]
pub struct GELU {
    /// How `Φ` is computed.
    pub approximate: GeluApproximation,
}

impl GELU {
    /// GELU with the tanh approximation (as GPT-2 and BERT use).
    pub fn tanh() -> Self {
        GELU { approximate: GeluApproximation::Tanh }
    }
}

/// Leaky ReLU (`torch.nn.LeakyReLU`): `x` for `x > 0`, `negative_slope·x` otherwise.
#[derive(Clone, Copy, Debug)]
pub struct LeakyReLU {
    /// The slope below zero.
    pub negative_slope: f32,
}

impl LeakyReLU {
    /// Leaky ReLU with this slope below zero.
    pub fn new(negative_slope: f32) -> Self {
        LeakyReLU { negative_slope }
    }
}

impl Default for LeakyReLU {
    /// PyTorch's default slope, 0.01.
    fn default() -> Self {
        LeakyReLU::new(0.01)
    }
}

/// ELU (`torch.nn.ELU`): `x` for `x > 0`, `alpha·(e^x − 1)` otherwise.
#[derive(Clone, Copy, Debug)]
pub struct ELU {
    /// The negative saturation value's magnitude.
    pub alpha: f32,
}

impl ELU {
    /// ELU with this `alpha`.
    pub fn new(alpha: f32) -> Self {
        ELU { alpha }
    }
}

impl Default for ELU {
    /// PyTorch's default, `alpha` 1.
    fn default() -> Self {
        ELU::new(1.0)
    }
}

/// Implements `Module` for a parametrized activation through the unary op it builds.
macro_rules! parametrized_activation {
    ($name:ident, |$layer:ident| $op:expr) => {
        impl Module for $name {
            fn forward(&self, x: &Tensor, _mode: Mode) -> Tensor {
                let $layer = self;
                x.unary($op)
            }

            fn output_shape(&self, input: &Shape) -> Result<Shape> {
                Ok(input.clone())
            }

            fn summary_style(&self) -> SummaryStyle {
                SummaryStyle::Fold(String::new())
            }
        }
    };
}

parametrized_activation!(GELU, |layer| match layer.approximate {
    GeluApproximation::None => UnaryOp::Gelu,
    GeluApproximation::Tanh => UnaryOp::GeluTanh,
});
parametrized_activation!(LeakyReLU, |layer| UnaryOp::LeakyRelu { negative_slope: layer.negative_slope });
parametrized_activation!(ELU, |layer| UnaryOp::Elu { alpha: layer.alpha });
