//! The run's history for the plots and the best checkpoint: each epoch's scores and
//! learning rate, the running training loss every few steps, and the best test
//! accuracy so far. It travels in the checkpoint's metadata (floats written so they
//! read back bit for bit), so a resumed run plots its whole past.

use std::collections::BTreeMap;

use crate::report::Score;

/// One finished epoch: the timing-free part of its `EpochRecord`, so that a checkpoint,
/// which carries the history, stays byte-reproducible.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochPoint {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Training loss and accuracy over the epoch.
    pub train: Score,
    /// Test loss and accuracy after it.
    pub test: Score,
    /// Learning rate of its last step.
    pub lr: f64,
}

/// The mean training loss of a window of steps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RunningPoint {
    /// Where the window ends, in epochs (1.5 = halfway through the second epoch).
    pub at_epoch: f64,
    /// Mean training loss over the window.
    pub loss: f64,
    /// Learning rate of the window's last step.
    pub lr: f64,
}

/// Everything plotted, and the best epoch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    /// Finished epochs.
    pub epochs: Vec<EpochPoint>,
    /// Running training loss.
    pub running: Vec<RunningPoint>,
    window_sum: f64,
    window_steps: usize,
}

const EPOCHS_KEY: &str = "history_epochs";
const RUNNING_KEY: &str = "history_running";
const WINDOW_KEY: &str = "history_window";

impl History {
    /// Adds one training step (its loss, where it ends and its learning rate, as a
    /// point of its own); closes a window into a running point when `close_window`
    /// (every few steps).
    pub fn add_step(&mut self, step: RunningPoint, close_window: bool) {
        self.window_sum += step.loss;
        self.window_steps += 1;
        if close_window {
            let loss = self.window_sum / self.window_steps as f64;
            self.running.push(RunningPoint { loss, ..step });
            self.window_sum = 0.0;
            self.window_steps = 0;
        }
    }

    /// The epoch with the best test accuracy so far (the first of equals).
    pub fn best(&self) -> Option<&EpochPoint> {
        self.epochs.iter().fold(None, |best: Option<&EpochPoint>, e| match best {
            Some(b) if b.test.accuracy >= e.test.accuracy => Some(b),
            _ => Some(e),
        })
    }

    /// The history as checkpoint metadata.
    pub fn write_metadata(&self, meta: &mut BTreeMap<String, String>) {
        let epochs: Vec<String> = self
            .epochs
            .iter()
            .map(|e| {
                format!(
                    "{},{},{},{},{},{}",
                    e.epoch, e.train.loss, e.train.accuracy, e.test.loss, e.test.accuracy, e.lr
                )
            })
            .collect();
        let running: Vec<String> =
            self.running.iter().map(|r| format!("{},{},{}", r.at_epoch, r.loss, r.lr)).collect();
        meta.insert(EPOCHS_KEY.into(), epochs.join(";"));
        meta.insert(RUNNING_KEY.into(), running.join(";"));
        meta.insert(WINDOW_KEY.into(), format!("{},{}", self.window_sum, self.window_steps));
    }

    /// The history stored by [`History::write_metadata`]; an empty one when the
    /// checkpoint has none (an older Kiln's).
    pub fn from_metadata(meta: &BTreeMap<String, String>) -> Result<History, String> {
        let mut history = History::default();
        let bad = |key: &str| format!("the checkpoint's `{key}` is malformed");
        let numbers = |text: &str, key: &str, count: usize| -> Result<Vec<f64>, String> {
            let values: Vec<f64> =
                text.split(',').map(|v| v.parse().map_err(|_| bad(key))).collect::<Result<_, _>>()?;
            if values.len() == count { Ok(values) } else { Err(bad(key)) }
        };
        let records =
            |key: &str| meta.get(key).into_iter().flat_map(|v| v.split(';')).filter(|r| !r.is_empty());
        for record in records(EPOCHS_KEY) {
            let v = numbers(record, EPOCHS_KEY, 6)?;
            history.epochs.push(EpochPoint {
                epoch: v[0] as usize,
                train: Score { loss: v[1], accuracy: v[2] },
                test: Score { loss: v[3], accuracy: v[4] },
                lr: v[5],
            });
        }
        for record in records(RUNNING_KEY) {
            let v = numbers(record, RUNNING_KEY, 3)?;
            history.running.push(RunningPoint { at_epoch: v[0], loss: v[1], lr: v[2] });
        }
        if let Some(window) = meta.get(WINDOW_KEY) {
            let v = numbers(window, WINDOW_KEY, 2)?;
            (history.window_sum, history.window_steps) = (v[0], v[1] as usize);
        }
        Ok(history)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_history_survives_checkpoint_metadata_exactly() {
        let mut history = History::default();
        history.add_step(RunningPoint { loss: 2.3, at_epoch: 0.1, lr: 0.004 }, false);
        history.add_step(RunningPoint { loss: 1.0 / 3.0, at_epoch: 0.2, lr: 0.01 }, true);
        history.add_step(RunningPoint { loss: 0.7, at_epoch: 0.3, lr: 0.02 }, false);
        let score = |loss, accuracy| Score { loss, accuracy };
        history.epochs.push(EpochPoint {
            epoch: 1,
            train: score(0.6, 0.8),
            test: score(0.4, 0.85),
            lr: 0.02,
        });
        history.epochs.push(EpochPoint {
            epoch: 2,
            train: score(0.3, 0.9),
            test: score(0.35, 0.85),
            lr: 0.01,
        });
        let mut meta = BTreeMap::new();
        history.write_metadata(&mut meta);
        let back = History::from_metadata(&meta).unwrap();
        assert_eq!(back, history);
        assert_eq!(back.running[0].loss, (2.3 + 1.0 / 3.0) / 2.0);
        assert_eq!(back.best().unwrap().epoch, 1, "the first of two equal accuracies");
        assert_eq!(History::from_metadata(&BTreeMap::new()).unwrap(), History::default());
        meta.insert(RUNNING_KEY.into(), "1,2".into());
        assert!(History::from_metadata(&meta).unwrap_err().contains(RUNNING_KEY));
    }
}
