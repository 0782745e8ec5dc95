//! `TrainConfig`: the settings of a run that are not the model, the data, the optimizer
//! or the loss (epochs, batch size, seed, the files it writes, when it stops early),
//! and the check that every file the run reads or writes is usable before any work.

use std::path::{Path, PathBuf};

use kiln_nn::checkpoint;

use crate::plots;
use crate::report::open_metrics;

/// Where the plots go.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PlotsDir {
    /// In the checkpoint's directory.
    #[default]
    BesideCheckpoint,
    /// In this directory.
    Dir(PathBuf),
    /// Not drawn.
    Off,
}

/// What the run is for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Purpose {
    /// Train (from the start, or resuming the checkpoint).
    #[default]
    Train,
    /// Only evaluate the model saved in the checkpoint.
    Evaluate,
}

/// The settings of a run. `TrainConfig::default()` is 10 epochs of batches of 64, seed
/// 0, checkpoints in `checkpoints/model.safetensors`, plots beside it.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Examples per step (all processes together in a data-parallel run).
    pub batch_size: usize,
    /// Seed of the shuffles and of the dropout masks (the model's initialization is the
    /// caller's).
    pub seed: u64,
    /// The checkpoint file (safetensors): saved after every epoch, on a pause and
    /// every `checkpoint_every` steps; the best epoch's model goes beside it as
    /// `{stem}-best.safetensors`.
    pub checkpoint: PathBuf,
    /// Also save every N steps.
    pub checkpoint_every: Option<usize>,
    /// Pause after N steps of this run, saving a checkpoint.
    pub max_steps: Option<usize>,
    /// Continue from `checkpoint` at the epoch and step it was saved at.
    pub resume: bool,
    /// Train, or only evaluate the checkpoint's model.
    pub purpose: Purpose,
    /// One JSON object per epoch is appended to this file (JSON lines).
    pub metrics: Option<PathBuf>,
    /// Where `training.png` and `confusion.png` go.
    pub plots: PlotsDir,
    /// Print the progress bar (on a terminal) and a line per epoch.
    pub progress: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 10,
            batch_size: 64,
            seed: 0,
            checkpoint: PathBuf::from("checkpoints/model.safetensors"),
            checkpoint_every: None,
            max_steps: None,
            resume: false,
            purpose: Purpose::Train,
            metrics: None,
            plots: PlotsDir::BesideCheckpoint,
            progress: true,
        }
    }
}

impl TrainConfig {
    /// Fails with a one-line reason when a setting is impossible.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("epochs", Some(self.epochs)),
            ("batch size", Some(self.batch_size)),
            ("checkpoint_every", self.checkpoint_every),
            ("max_steps", self.max_steps),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, value)| *value == Some(0)) {
            return Err(format!("the {name} must be at least 1"));
        }
        if self.resume && self.purpose == Purpose::Evaluate {
            return Err("--resume and --eval-only exclude each other".into());
        }
        Ok(())
    }

    /// The directory of the plots, unless they are off.
    pub fn plots_dir(&self) -> Option<PathBuf> {
        match &self.plots {
            PlotsDir::Dir(dir) => Some(dir.clone()),
            PlotsDir::Off => None,
            PlotsDir::BesideCheckpoint => Some(match self.checkpoint.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
                _ => PathBuf::from("."),
            }),
        }
    }

    /// The path of the training curves, unless plots are off.
    pub fn training_plot(&self) -> Option<PathBuf> {
        self.plots_dir().map(|dir| dir.join(plots::TRAINING_FILE))
    }

    /// The path of the confusion matrix, unless plots are off.
    pub fn confusion_plot(&self) -> Option<PathBuf> {
        self.plots_dir().map(|dir| dir.join(plots::CONFUSION_FILE))
    }

    /// The best checkpoint's path: `{stem}-best.safetensors` beside the checkpoint.
    pub fn best_checkpoint(&self) -> PathBuf {
        best_checkpoint_path(&self.checkpoint)
    }

    /// Checks the files the run reads and writes before any expensive work: the
    /// checkpoint to resume or evaluate exists, and every file the run may write (the
    /// checkpoint, the best checkpoint, the metrics, the plots) can be created and is
    /// not a directory. An existing metrics file is not truncated here.
    pub fn check_files(&self) -> Result<(), String> {
        let evaluate = self.purpose == Purpose::Evaluate;
        if (self.resume || evaluate) && !self.checkpoint.is_file() {
            let flag = if self.resume { "--resume" } else { "--eval-only" };
            return Err(format!(
                "{flag} needs the checkpoint {}, which does not exist; point --checkpoint at a saved one",
                self.checkpoint.display()
            ));
        }
        let writable = |path: &Path| checkpoint::ensure_writable(path).map_err(|err| err.to_string());
        if !evaluate {
            writable(&self.checkpoint)?;
            writable(&self.best_checkpoint())?;
            if let Some(path) = &self.metrics {
                open_metrics(path, true)?;
            }
        }
        let Some(dir) = self.plots_dir() else { return Ok(()) };
        std::fs::create_dir_all(&dir)
            .map_err(|err| format!("cannot create the plots directory {}: {err}", dir.display()))?;
        let plots = if evaluate {
            vec![self.confusion_plot()]
        } else {
            vec![self.confusion_plot(), self.training_plot()]
        };
        for path in plots.into_iter().flatten() {
            checkpoint::ensure_writable(&path)
                .map_err(|err| format!("--plots: cannot write {}: {}", path.display(), io_reason(&err)))?;
        }
        Ok(())
    }
}

/// The underlying reason of a failed writability check, without the checkpoint wording.
fn io_reason(err: &kiln_nn::NnError) -> String {
    use std::error::Error;
    err.source().map(ToString::to_string).unwrap_or_else(|| err.to_string())
}

/// The best checkpoint's path for `checkpoint`: `{stem}-best.safetensors` beside it.
pub fn best_checkpoint_path(checkpoint: &Path) -> PathBuf {
    let stem = checkpoint.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    checkpoint.with_file_name(format!("{stem}-best.safetensors"))
}
