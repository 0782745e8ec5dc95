//! `Flatten`: `[N, C, H, W]` to `[N, C·H·W]`.

use kiln_tensor::{Shape, Tensor};

use crate::{Mode, Module, Result, SummaryStyle};

/// Flattens every dimension after the batch; PyTorch's `nn.Flatten()`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Flatten;

impl Module for Flatten {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Tensor {
        x.flatten(1)
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape> {
        Ok(Shape::from([input.numel()]))
    }

    fn summary_style(&self) -> SummaryStyle {
        SummaryStyle::Row("flatten".into())
    }
}
