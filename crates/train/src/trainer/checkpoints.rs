//! The trainer's checkpoints: what a save writes (model, optimizer, position, the
//! epoch's running sums, the history, the run's settings, whether the model has given a
//! finite loss), resuming with the settings checked, the best epoch's model, and the
//! messages of a pause and of a divergence that name the checkpoint to trust.

use std::collections::BTreeMap;
use std::path::Path;

use kiln_dist::DataParallel;
use kiln_nn::{Module, NnError, checkpoint};

use super::{Ending, Paused, Position, Trainer};
use crate::history::{EpochPoint, History};
use crate::report::Tally;
use crate::{Result, TrainError};

/// The checkpoint that this run wrote or resumed from.
#[derive(Clone, Copy, Debug)]
pub(super) struct SavedCheckpoint {
    /// The step it was saved at.
    step: usize,
    /// Whether its model has given a finite loss (the next step's training loss, or the
    /// test loss at the end of an epoch). Finite numbers in the file are not enough: a
    /// model that diverged can be finite and still give NaN on the next batch.
    loss_checked: bool,
}

/// Metadata key saying whether a checkpoint's model has given a finite loss.
const LOSS_CHECKED: &str = "loss_checked";

/// Metadata key of the seconds already spent on the epoch in progress.
const EPOCH_SECONDS: &str = "epoch_seconds";

impl<M: Module> Trainer<'_, M> {
    /// The settings a checkpoint must share with the run that resumes it: the caller's
    /// and the seed, the batch size and the training set's size.
    fn run_settings(&self) -> BTreeMap<String, String> {
        let mut settings = self.run_settings.clone();
        settings.insert("seed".into(), self.config.seed.to_string());
        settings.insert("batch_size".into(), self.config.batch_size.to_string());
        settings.insert("train_size".into(), self.train.len().to_string());
        settings
    }

    /// Saves model, optimizer, position and the epoch's running sums to the
    /// checkpoint, `epoch_seconds` being the training time of the epoch in progress,
    /// and whether the model has given a finite loss. A model that became non-finite is
    /// not saved: that ends training with the divergence message.
    pub(super) fn save(&mut self, epoch_seconds: f64, loss_checked: bool) -> Result<()> {
        self.save_waiting = false;
        let saved = SavedCheckpoint { step: self.position.step, loss_checked };
        if !self.is_root() {
            self.last_saved = Some(saved);
            return Ok(());
        }
        let mut meta = self.run_settings();
        meta.insert("epoch".into(), self.position.epoch.to_string());
        meta.insert("batch".into(), self.position.batch.to_string());
        meta.insert("step".into(), self.position.step.to_string());
        meta.insert(LOSS_CHECKED.into(), loss_checked.to_string());
        if self.tally.seen() > 0 {
            self.tally.write_metadata(&mut meta);
            meta.insert(EPOCH_SECONDS.into(), epoch_seconds.to_string());
        }
        self.history.write_metadata(&mut meta);
        match checkpoint::save(&self.config.checkpoint, &self.model, Some(self.optimizer.as_ref()), &meta) {
            Ok(()) => {
                self.last_saved = Some(saved);
                Ok(())
            }
            Err(NnError::NonFinite { name, .. }) => Err(TrainError::Failed(
                self.diverged(&format!("`{name}` became NaN or infinite by step {}", self.position.step)),
            )),
            Err(err) => Err(TrainError::Failed(err.to_string())),
        }
    }

    /// Restores model, optimizer and position from the checkpoint, refusing one saved
    /// with other settings. Rank 0 reads the file and sends it to the others, so the
    /// other processes need not see rank 0's files.
    pub(super) fn resume(&mut self) -> Result<()> {
        let path = self.config.checkpoint.clone();
        let cannot = |err: String| TrainError::Failed(format!("cannot resume: {err}"));
        let bytes = rank0_file(&self.processes, &path).map_err(cannot)?;
        let meta = checkpoint::load_bytes(&bytes, &path, &mut self.model, Some(self.optimizer.as_mut()))
            .map_err(|err| cannot(err.to_string()))?;
        for (key, value) in self.run_settings() {
            let saved = meta.get(&key).map(String::as_str).unwrap_or("(none)");
            if saved != value {
                return Err(cannot(format!(
                    "{} was saved with {key} = {saved}, this run has {value}; use the same settings",
                    path.display()
                )));
            }
        }
        let number = |key: &str| -> Result<usize> {
            meta.get(key)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| cannot(format!("{} lacks the training position `{key}`", path.display())))
        };
        self.position = Position { epoch: number("epoch")?, batch: number("batch")?, step: number("step")? };
        self.tally = Tally::from_metadata(&meta).map_err(cannot)?;
        self.history = History::from_metadata(&meta).map_err(cannot)?;
        self.carried_seconds = meta.get(EPOCH_SECONDS).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        let loss_checked = meta.get(LOSS_CHECKED).is_some_and(|v| v == "true");
        self.last_saved = Some(SavedCheckpoint { step: self.position.step, loss_checked });
        Ok(())
    }

    /// Loads only the model from the checkpoint (for evaluation), as rank 0 reads it,
    /// and returns the checkpoint's metadata (the run settings it was trained with).
    pub fn load_weights(&mut self) -> Result<BTreeMap<String, String>> {
        let path = self.config.checkpoint.clone();
        let cannot = |err: String| TrainError::Failed(format!("cannot evaluate: {err}"));
        let bytes = rank0_file(&self.processes, &path).map_err(cannot)?;
        checkpoint::load_bytes(&bytes, &path, &mut self.model, None).map_err(|err| cannot(err.to_string()))
    }

    /// Called when the model as it is now (before this step's update) gave a finite
    /// loss: marks the checkpoint on disk as checked when it holds this model, and
    /// writes a `checkpoint_every` save that was waiting for this loss.
    pub(super) fn model_gave_finite_loss(&mut self, epoch_seconds: f64) -> Result<()> {
        if let Some(saved) = self.last_saved.as_mut().filter(|saved| saved.step == self.position.step) {
            saved.loss_checked = true;
        }
        if self.save_waiting { self.save(epoch_seconds, true) } else { Ok(()) }
    }

    /// Saves the model (without optimizer state) to the best checkpoint (rank 0 only),
    /// with the run's settings.
    pub(super) fn save_best(&self, epoch: &EpochPoint) -> Result<()> {
        if !self.is_root() {
            return Ok(());
        }
        let mut meta = self.run_settings.clone();
        meta.insert("epoch".into(), epoch.epoch.to_string());
        meta.insert("test_accuracy".into(), epoch.test.accuracy.to_string());
        checkpoint::save(&self.config.best_checkpoint(), &self.model, None, &meta)
            .map_err(|err| TrainError::Failed(err.to_string()))
    }

    /// Saves a checkpoint and describes the pause (`why`: what stopped the run).
    pub(super) fn pause(&mut self, why: &str, epoch_seconds: f64, interrupted: bool) -> Result<Ending> {
        // Saved before a loss of this model was seen: the run that resumes it checks it
        // on its first step.
        self.save(epoch_seconds, false)?;
        let message = format!(
            "{why}: checkpoint saved to {} at epoch {}, batch {} (step {}); continue with --resume",
            self.config.checkpoint.display(),
            self.position.epoch + 1,
            self.position.batch,
            self.position.step
        );
        Ok(Ending::Paused(Paused { message, interrupted }))
    }

    /// The message for a run that diverged (`what` says how it showed).
    pub(super) fn diverged(&self, what: &str) -> String {
        let path = self.config.checkpoint.display();
        let checkpoint = match self.last_saved {
            Some(SavedCheckpoint { step, loss_checked: true }) => {
                format!("the last good checkpoint, {path} (step {step}), is intact")
            }
            // Only a checkpoint saved by a pause is unchecked, and the first step of the
            // run that resumes it checks it: this is that step.
            Some(SavedCheckpoint { step, loss_checked: false }) => format!(
                "the checkpoint {path} (step {step}) was saved by a pause before any loss of its model was seen, \
                 and that model gives this loss: it is not a good checkpoint; start a new run"
            ),
            None => "no checkpoint had been saved yet".to_string(),
        };
        format!(
            "{what} (epoch {}): training stopped; {checkpoint}. Try a lower --lr.",
            self.position.epoch + 1
        )
    }
}

/// The bytes of the file at `path` as rank 0 reads them, on every process (so the
/// others need not see rank 0's files).
fn rank0_file(processes: &DataParallel, path: &Path) -> std::result::Result<Vec<u8>, String> {
    let mut bytes = if processes.is_root() {
        std::fs::read(path).map_err(|err| format!("cannot read {}: {err}", path.display()))?
    } else {
        Vec::new()
    };
    processes.broadcast_bytes(&mut bytes);
    Ok(bytes)
}
