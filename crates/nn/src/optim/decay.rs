//! Which parameters an optimizer's weight decay applies to: all, or the matrices and
//! kernels only (biases and normalization scales left undecayed), which PyTorch users
//! get from two parameter groups.

use kiln_tensor::Tensor;

/// The parameters weight decay applies to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DecayScope {
    /// Every parameter.
    #[default]
    All,
    /// Parameters of two or more dimensions (dense and convolution weights, embedding
    /// tables); one-dimensional ones — biases, normalization layers' `weight` and
    /// `bias` — are not decayed.
    MatricesOnly,
}

impl DecayScope {
    /// Whether weight decay applies to `param`.
    pub fn applies_to(self, param: &Tensor) -> bool {
        match self {
            DecayScope::All => true,
            DecayScope::MatricesOnly => param.shape().rank() >= 2,
        }
    }
}
