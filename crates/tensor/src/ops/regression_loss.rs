//! Losses between a prediction and a target of the same shape, each the batch mean as
//! PyTorch's default `reduction='mean'` gives: mean squared error, mean absolute error,
//! Huber, and binary cross-entropy on logits. Built from elementwise ops and a mean, so
//! their gradients follow from those ops' rules.

use crate::Tensor;

impl Tensor {
    /// Panics unless `target` has this tensor's shape.
    fn expect_target(&self, op: &str, target: &Tensor) {
        assert_eq!(
            self.shape(),
            target.shape(),
            "{op}: prediction {} and target {} differ",
            self.shape(),
            target.shape()
        );
    }

    /// Mean of `(x − target)²` (PyTorch's `mse_loss`).
    pub fn mse_loss(&self, target: &Tensor) -> Tensor {
        self.expect_target("mse_loss", target);
        let d = self.sub(target);
        d.mul(&d).mean()
    }

    /// Mean of `|x − target|` (PyTorch's `l1_loss`).
    pub fn l1_loss(&self, target: &Tensor) -> Tensor {
        self.expect_target("l1_loss", target);
        self.sub(target).abs().mean()
    }

    /// Mean Huber loss (PyTorch's `huber_loss`): `½d²` where `|d| < delta`, else
    /// `delta·(|d| − ½delta)`, with `d = x − target`.
    pub fn huber_loss(&self, target: &Tensor, delta: f32) -> Tensor {
        self.expect_target("huber_loss", target);
        assert!(delta > 0.0, "huber_loss: delta must be positive, got {delta}");
        let magnitude = self.sub(target).abs();
        // With a = min(|d|, delta): ½a² + delta·(|d| − a) is both branches at once.
        let inside = magnitude.clamp(0.0, delta);
        inside.mul(&inside).mul_scalar(0.5).add(&magnitude.sub(&inside).mul_scalar(delta)).mean()
    }

    /// Mean binary cross-entropy of logits against targets in [0, 1] (PyTorch's
    /// `binary_cross_entropy_with_logits`), in the stable form
    /// `max(x, 0) − x·t + ln(1 + e^−|x|)`.
    pub fn bce_with_logits(&self, target: &Tensor) -> Tensor {
        self.expect_target("bce_with_logits", target);
        self.relu().sub(&self.mul(target)).add(&self.abs().neg().softplus()).mean()
    }
}
