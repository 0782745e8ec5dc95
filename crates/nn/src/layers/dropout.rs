//! `Dropout`: inverted dropout in training, the identity in evaluation.

use kiln_tensor::{DropoutMask, Shape, Tensor};

use crate::{Mode, Module, Result, SummaryStyle};

/// Zeroes each activation with probability `p` during training and scales the rest by
/// `1/(1−p)`; the mask comes from the seed in [`Mode::Train`], and each sample's part
/// of it from the sample's index in the step's global batch (the first dimension is the
/// batch).
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

    /// The drop probability.
    pub fn p(&self) -> f32 {
        self.p
    }

    /// The mask window for an output of shape `output` (batch first) in `mode`: the
    /// step's seed, starting at the first sample's place in the global batch; `None`
    /// in evaluation, where dropout is the identity.
    pub fn mask(&self, output: &Shape, mode: Mode) -> Option<DropoutMask> {
        match mode {
            Mode::Train { seed, first_sample } => {
                let per_sample = output.dims().iter().skip(1).product::<usize>() as u64;
                let first_index = u32::try_from(first_sample * per_sample)
                    .expect("Dropout: the global batch has more than 2^32 activations");
                Some(DropoutMask::new(seed).starting_at(first_index))
            }
            Mode::Eval => None,
        }
    }
}

impl Module for Dropout {
    fn forward(&self, x: &Tensor, mode: Mode) -> Tensor {
        match self.mask(x.shape(), mode) {
            Some(mask) => x.dropout_with(self.p, mask),
            None => x.clone(),
        }
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape> {
        Ok(input.clone())
    }

    fn summary_style(&self) -> SummaryStyle {
        SummaryStyle::Fold(format!(" + dropout {}", self.p))
    }
}
