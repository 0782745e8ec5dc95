//! Losses built from the fused cross-entropy and elementwise ops, so their gradients
//! come from those ops' backward rules on every device: label-smoothed cross-entropy,
//! and Keras' cross-entropy of probabilities (what `sparse_categorical_crossentropy`
//! computes for a model whose last layer is a softmax or a sigmoid).

use crate::Tensor;

/// Keras' `epsilon()`: probabilities are clipped to `[EPSILON, 1 − EPSILON]`.
const KERAS_EPSILON: f32 = 1e-7;

impl Tensor {
    /// Mean cross-entropy of these logits `[N, classes]` against targets that give the
    /// true class `1 − smoothing + smoothing / classes` and every other class
    /// `smoothing / classes` (PyTorch's `cross_entropy(label_smoothing=…)`):
    /// `(1 − ε)·CE(logits, labels) + ε·mean_k(−log softmax(logits)_k)`, averaged over
    /// the batch. `smoothing = 0` is [`Tensor::cross_entropy`].
    pub fn cross_entropy_smoothed(&self, labels: &Tensor, smoothing: f32) -> Tensor {
        assert!(
            (0.0..=1.0).contains(&smoothing),
            "cross_entropy_smoothed: smoothing must be in [0, 1], got {smoothing}"
        );
        let hard = self.cross_entropy(labels);
        if smoothing == 0.0 {
            return hard;
        }
        let uniform = self.log_softmax(1).mean().neg();
        hard.mul_scalar(1.0 - smoothing).add(&uniform.mul_scalar(smoothing))
    }

    /// Keras' `sparse_categorical_crossentropy` of these probabilities `[N, classes]`
    /// (each in `[0, 1]`, e.g. sigmoid outputs, not necessarily summing to 1): each is
    /// clipped to `[1e-7, 1 − 1e-7]`, the row divided by its sum, and the loss is the
    /// batch mean of `−log` of the true class's share. Outputs `[0.5, 0.5, 0.2]` with
    /// label 0 give `−ln(0.5 / 1.2) = 0.87547`.
    pub fn probability_cross_entropy(&self, labels: &Tensor) -> Tensor {
        // −log(p_y / Σp) = log Σ_k e^(log p_k) − log p_y: the softmax cross-entropy of
        // the log-probabilities, which is stable and has the fused op's gradient.
        self.clamp(KERAS_EPSILON, 1.0 - KERAS_EPSILON).log().cross_entropy(labels)
    }
}
