//! Activation layers: `ReLU`, `Sigmoid`, `Tanh`. In summaries they fold into the row of
//! the layer they follow.
//!
//! ```
//! use kiln_cpu::CpuDevice;
//! use kiln_nn::{Mode, Module, ReLU, Sigmoid, Tanh};
//! use kiln_tensor::{Device, Tensor};
//!
//! let x = Tensor::from_vec([3], vec![-1.0, 0.0, 2.0], &Device::cpu());
//! assert_eq!(ReLU.forward(&x, Mode::Eval).to_vec().unwrap(), vec![0.0, 0.0, 2.0]);
//! assert_eq!(Sigmoid.forward(&x, Mode::Eval).to_vec().unwrap()[1], 0.5);
//! assert_eq!(Tanh.forward(&x, Mode::Eval).to_vec().unwrap()[1], 0.0);
//! ```

use kiln_tensor::{Shape, Tensor};

use crate::{Mode, Module, Result, SummaryStyle};

macro_rules! activation {
    ($(#[$doc:meta])* $name:ident, $method:ident, $is_relu:literal) => {
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

            fn is_relu(&self) -> bool {
                $is_relu
            }
        }
    };
}

activation!(
    /// `max(x, 0)` elementwise.
    ReLU,
    relu,
    true
);
activation!(
    /// The logistic function elementwise.
    Sigmoid,
    sigmoid,
    false
);
activation!(
    /// Hyperbolic tangent elementwise.
    Tanh,
    tanh,
    false
);
