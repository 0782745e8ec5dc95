//! Metrics: accuracy of logits against labels, and a confusion matrix with per-class
//! accuracy.

use std::fmt::Write;

use kiln_tensor::Tensor;

use crate::Result;

/// Predicted classes (argmax over dimension 1 of `[N, classes]` logits) on the host.
pub fn predictions(logits: &Tensor) -> Result<Vec<i32>> {
    Ok(logits.argmax(1).to_vec_i32()?)
}

/// Fraction of rows of `logits` whose argmax equals the label.
pub fn accuracy(logits: &Tensor, labels: &Tensor) -> Result<f32> {
    let predicted = predictions(logits)?;
    let truth = labels.to_vec_i32()?;
    let correct = predicted.iter().zip(&truth).filter(|(p, t)| p == t).count();
    Ok(correct as f32 / truth.len().max(1) as f32)
}

/// Counts of (true class, predicted class) pairs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfusionMatrix {
    classes: usize,
    counts: Vec<u64>,
}

impl ConfusionMatrix {
    /// An empty matrix for `classes` classes.
    pub fn new(classes: usize) -> Self {
        ConfusionMatrix { classes, counts: vec![0; classes * classes] }
    }

    /// Counts one example.
    pub fn add(&mut self, truth: usize, predicted: usize) {
        self.add_count(truth, predicted, 1);
    }

    /// Counts `count` more examples of class `truth` predicted as `predicted` (e.g. the
    /// counts of another process's matrix).
    pub fn add_count(&mut self, truth: usize, predicted: usize, count: u64) {
        self.counts[truth * self.classes + predicted] += count;
    }

    /// Counts a batch of logits against labels.
    pub fn add_batch(&mut self, logits: &Tensor, labels: &Tensor) -> Result<()> {
        for (p, t) in predictions(logits)?.into_iter().zip(labels.to_vec_i32()?) {
            self.add(t as usize, p as usize);
        }
        Ok(())
    }

    /// Examples of class `truth` predicted as `predicted`.
    pub fn count(&self, truth: usize, predicted: usize) -> u64 {
        self.counts[truth * self.classes + predicted]
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Examples counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Overall accuracy.
    pub fn accuracy(&self) -> f32 {
        let correct: u64 = (0..self.classes).map(|c| self.count(c, c)).sum();
        correct as f32 / self.total().max(1) as f32
    }

    /// Accuracy on the examples of class `c` (`None` if there were none).
    pub fn class_accuracy(&self, c: usize) -> Option<f32> {
        let row: u64 = (0..self.classes).map(|p| self.count(c, p)).sum();
        (row > 0).then(|| self.count(c, c) as f32 / row as f32)
    }

    /// The matrix as text: one row a true class (labelled by `names`), one column a
    /// predicted class (numbered).
    pub fn render(&self, names: &[&str]) -> String {
        let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0).max(5);
        let mut out = format!("{:>width$}  predicted →\n{:>width$}", "true ↓", "");
        for p in 0..self.classes {
            let _ = write!(out, " {p:>5}");
        }
        out.push('\n');
        for t in 0..self.classes {
            let name = names.get(t).copied().unwrap_or("?");
            let _ = write!(out, "{name:>width$}");
            for p in 0..self.classes {
                let _ = write!(out, " {:>5}", self.count(t, p));
            }
            out.push('\n');
        }
        out
    }
}
