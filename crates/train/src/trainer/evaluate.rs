//! Evaluation: loss, accuracy and the confusion matrix on a dataset in evaluation mode,
//! summed across the processes of a data-parallel run, and stopped by the stop flag.

use std::sync::atomic::Ordering;

use kiln_data::Dataset;
use kiln_dist::DataParallel;
use kiln_nn::{ConfusionMatrix, Mode, Module, metrics};
use kiln_tensor::no_grad;

use super::Trainer;
use crate::report::{Score, Tally};
use crate::{Result, TrainError};

/// A model's scores on a dataset.
#[derive(Clone, Debug)]
pub struct Evaluation {
    /// Mean loss and accuracy.
    pub score: Score,
    /// Counts of every (true class, predicted class) pair.
    pub confusion: ConfusionMatrix,
}

impl<M: Module> Trainer<'_, M> {
    /// Scores the model on the test set; `None` when the stop flag interrupted it.
    pub fn evaluate(&self) -> Result<Option<Evaluation>> {
        self.evaluate_on(&*self.test)
    }

    /// Scores the model on `data` in evaluation mode (each process its shard); `None`
    /// when the stop flag interrupted it.
    pub fn evaluate_on(&self, data: &dyn Dataset) -> Result<Option<Evaluation>> {
        let mut tally = Tally::default();
        // As many classes as the model has outputs, or as the data names if more.
        let outputs = self.model.output_shape(&data.example_shape()).map_or(0, |shape| shape.numel());
        let mut matrix = ConfusionMatrix::new(outputs.max(data.class_names().len()));
        let failed = |err: &dyn std::fmt::Display| TrainError::Failed(err.to_string());
        for batch in data.epoch(self.request(0, 0)) {
            if self.stop.load(Ordering::Relaxed) && self.processes.size() == 1 {
                return Ok(None);
            }
            if batch.is_empty() {
                continue;
            }
            let labels = batch.labels.clone();
            let (x, y) = batch.into_tensors(&self.device);
            let logits = no_grad(|| self.model.forward(&x, Mode::Eval));
            let loss = no_grad(|| self.loss.evaluation_loss(&logits, &y)).item().map_err(|e| failed(&e))?;
            let predicted = metrics::predictions(&logits).map_err(|e| failed(&e))?;
            let mut correct = 0;
            for (&p, &t) in predicted.iter().zip(&labels) {
                matrix.add(t as usize, p as usize);
                correct += usize::from(p == t);
            }
            tally.add(labels.len(), loss, correct);
        }
        if self.processes.size() > 1 {
            let interrupted = self.stop.load(Ordering::Relaxed);
            (tally, matrix) = summed(&self.processes, &tally, &matrix, interrupted);
            if tally.seen() == 0 {
                return Ok(None);
            }
        }
        Ok(Some(Evaluation { score: tally.score(), confusion: matrix }))
    }
}

/// The evaluation sums of all processes: tallies and confusion matrices added up, or
/// an empty tally when any process was interrupted.
fn summed(
    processes: &DataParallel,
    tally: &Tally,
    matrix: &ConfusionMatrix,
    interrupted: bool,
) -> (Tally, ConfusionMatrix) {
    let classes = matrix.classes();
    let mut sums = tally.sums().to_vec();
    sums.push(f64::from(u8::from(interrupted)));
    for truth in 0..classes {
        sums.extend((0..classes).map(|predicted| matrix.count(truth, predicted) as f64));
    }
    processes.sum(&mut sums);
    let mut total = ConfusionMatrix::new(classes);
    for (cell, count) in sums[4..].iter().enumerate() {
        total.add_count(cell / classes, cell % classes, *count as u64);
    }
    let tally = if sums[3] > 0.0 { Tally::default() } else { Tally::from_sums([sums[0], sums[1], sums[2]]) };
    (tally, total)
}
