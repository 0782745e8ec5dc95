//! Activation layers: `ReLU`, `Sigmoid`, `Tanh`. In summaries they fold into the row of
//! the layer they follow.

use kiln_tensor::{Shape, Tensor};

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
