//! `Flatten`: `[N, C, H, W]` to `[N, C·H·W]`.

use kiln_tensor::{Shape, Tensor};

use crate::{Mode, Module, Result, SummaryStyle};

/// Flattens every dimension after the batch; PyTorch's `nn.Flatten()`.
///
/// ```
/// use kiln_cpu::CpuDevice;
/// use kiln_nn::{Flatten, Mode, Module};
/// use kiln_tensor::{Device, Tensor};
///
/// let y = Flatten.forward(&Tensor::zeros([2, 256, 5, 5], &Device::cpu()), Mode::Eval);
/// assert_eq!(y.dims(), &[2, 6400]);
/// ```
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
