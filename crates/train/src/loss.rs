//! `Loss`: what the trainer minimizes, and what it reports on the test set.

use kiln_tensor::Tensor;

/// The objective of a classification run: a scalar loss of the model's outputs
/// `[N, classes]` against integer labels `[N]`. The evaluation loss (reported on the
/// test set) may differ from the training one, as a label-smoothed loss is usually
/// reported unsmoothed.
pub trait Loss: Send + Sync {
    /// The loss that is minimized.
    fn training_loss(&self, outputs: &Tensor, labels: &Tensor) -> Tensor;

    /// The loss reported on the test set (the training loss unless overridden).
    fn evaluation_loss(&self, outputs: &Tensor, labels: &Tensor) -> Tensor {
        self.training_loss(outputs, labels)
    }
}

/// Softmax cross-entropy of logits (PyTorch's `nn.CrossEntropyLoss`), with label
/// smoothing in training (`0.0`: hard labels) and reported without it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CrossEntropy {
    /// Share of each target spread evenly over all classes, in `[0, 1)`.
    pub label_smoothing: f32,
}

impl Loss for CrossEntropy {
    fn training_loss(&self, outputs: &Tensor, labels: &Tensor) -> Tensor {
        if self.label_smoothing == 0.0 {
            outputs.cross_entropy(labels)
        } else {
            outputs.cross_entropy_smoothed(labels, self.label_smoothing)
        }
    }

    fn evaluation_loss(&self, outputs: &Tensor, labels: &Tensor) -> Tensor {
        outputs.cross_entropy(labels)
    }
}
