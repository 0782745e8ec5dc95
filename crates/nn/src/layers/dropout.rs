//! `Dropout`: inverted dropout in training, the identity in evaluation.

use kiln_tensor::{Shape, Tensor};

use crate::{Mode, Module, Result, SummaryStyle};

/// Zeroes each activation with probability `p` during training and scales the rest by
/// `1/(1−p)`; the mask comes from the seed in [`Mode::Train`].
///
/// ```
/// use kiln_cpu::CpuDevice;
/// use kiln_nn::{Dropout, Mode, Module};
/// use kiln_tensor::{Device, Tensor};
///
/// let x = Tensor::ones([1000], &Device::cpu());
/// let drop = Dropout::new(0.5);
/// assert_eq!(drop.forward(&x, Mode::Eval).to_vec().unwrap(), vec![1.0; 1000]);
/// let trained = drop.forward(&x, Mode::train(7)).to_vec().unwrap();
/// assert!(trained.iter().all(|&v| v == 0.0 || v == 2.0));
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Dropout {
    p: f32,
}

impl Dropout {
    /// Drop probability `p` in `[0, 1)`.
    pub fn new(p: f32) -> Self {
        assert!((0.0..1.0).contains(&p), "Dropout: p must be in [0, 1), got {p}");
        Dropout { p }
    }
}

impl Module for Dropout {
    fn forward(&self, x: &Tensor, mode: Mode) -> Tensor {
        match mode {
            Mode::Train { seed } => x.dropout(self.p, seed),
            Mode::Eval => x.clone(),
        }
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape> {
        Ok(input.clone())
    }

    fn summary_style(&self) -> SummaryStyle {
        SummaryStyle::Fold(format!(" + dropout {}", self.p))
    }
}
