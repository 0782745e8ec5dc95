//! The training run: epochs of steps with checkpoints (every N steps, at each epoch
//! end, on Ctrl-C or --max-steps), resuming at the saved epoch and batch, stopping on a
//! non-finite loss, and evaluation on the test set.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kiln_data::{BatchConfig, Prefetcher, Split};
use kiln_nn::{ConfusionMatrix, Mode, Module, Optimizer, Sequential, checkpoint, metrics};
use kiln_tensor::{Device, Rng, no_grad};

use crate::args::Args;
use crate::report::{EpochRecord, Score, Tally, bar_message, epoch_bar, open_metrics, write_metrics};

/// Where training stands: the next epoch and batch to run, and steps taken so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    /// 0-based epoch in progress.
    pub epoch: usize,
    /// Next batch of that epoch.
    pub batch: usize,
    /// Optimizer steps taken since the start of training.
    pub step: usize,
}

/// How a training run ended.
pub enum Ending {
    /// All epochs ran.
    Finished { training: Duration, images: usize },
    /// Stopped early (Ctrl-C or --max-steps) after saving a checkpoint.
    Paused(Paused),
}

/// A run stopped early with its checkpoint saved.
pub struct Paused {
    /// What happened and how to continue.
    pub message: String,
    /// Stopped by Ctrl-C (rather than by --max-steps).
    pub interrupted: bool,
}

/// Settings a checkpoint must share with the run that resumes it.
const RUN_KEYS: [&str; 4] = ["seed", "image_size", "batch_size", "train_size"];

/// Everything a run needs.
pub struct Trainer<'a> {
    pub args: &'a Args,
    pub device: Device,
    pub model: Sequential,
    pub optimizer: Box<dyn Optimizer>,
    pub train: Split,
    pub test: Split,
    pub position: Position,
    pub interrupted: Arc<AtomicBool>,
    last_saved_step: Option<usize>,
}

/// The dropout seed of step `step`: fixed by the run seed, so a resumed run draws the
/// same masks as an uninterrupted one.
fn step_seed(seed: u64, step: usize) -> u64 {
    Rng::new(seed ^ (step as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)).next_u64()
}

impl<'a> Trainer<'a> {
    /// A trainer at the start of training.
    pub fn new(
        args: &'a Args,
        device: Device,
        model: Sequential,
        optimizer: Box<dyn Optimizer>,
        train: Split,
        test: Split,
    ) -> Self {
        Trainer {
            args,
            device,
            model,
            optimizer,
            train,
            test,
            position: Position::default(),
            interrupted: Arc::new(AtomicBool::new(false)),
            last_saved_step: None,
        }
    }

    fn run_settings(&self) -> BTreeMap<String, String> {
        let a = self.args;
        let values = [
            a.seed.to_string(),
            a.image_size.to_string(),
            a.batch_size.to_string(),
            self.train.len().to_string(),
        ];
        RUN_KEYS.iter().map(|k| k.to_string()).zip(values).collect()
    }

    /// Saves model, optimizer and position to --checkpoint.
    fn save(&mut self) -> Result<(), String> {
        let mut meta = self.run_settings();
        meta.insert("epoch".into(), self.position.epoch.to_string());
        meta.insert("batch".into(), self.position.batch.to_string());
        meta.insert("step".into(), self.position.step.to_string());
        checkpoint::save(&self.args.checkpoint, &self.model, Some(self.optimizer.as_ref()), &meta)
            .map_err(|err| format!("saving the checkpoint failed: {err}"))?;
        self.last_saved_step = Some(self.position.step);
        Ok(())
    }

    /// Restores model, optimizer and position from --checkpoint, refusing a checkpoint
    /// saved with other settings.
    pub fn resume(&mut self) -> Result<(), String> {
        let path = &self.args.checkpoint;
        let meta = checkpoint::load(path, &mut self.model, Some(self.optimizer.as_mut()))
            .map_err(|err| format!("cannot resume: {err}"))?;
        for (key, value) in self.run_settings() {
            let saved = meta.get(&key).map(String::as_str).unwrap_or("(none)");
            if saved != value {
                return Err(format!(
                    "cannot resume: {} was saved with {key} = {saved}, this run has {value}; use the same settings",
                    path.display()
                ));
            }
        }
        let number = |key: &str| -> Result<usize, String> {
            meta.get(key).and_then(|v| v.parse().ok()).ok_or_else(|| {
                format!("cannot resume: {} lacks the training position `{key}`", path.display())
            })
        };
        self.position = Position { epoch: number("epoch")?, batch: number("batch")?, step: number("step")? };
        self.last_saved_step = Some(self.position.step);
        Ok(())
    }

    fn batch_config(&self, shuffle: bool) -> BatchConfig {
        BatchConfig {
            batch_size: self.args.batch_size,
            image_size: self.args.image_size,
            shuffle,
            seed: self.args.seed,
            drop_last: false,
        }
    }

    /// Trains from the current position to the last epoch.
    pub fn train(&mut self) -> Result<Ending, String> {
        let mut metrics_file = match &self.args.metrics {
            Some(path) => Some(open_metrics(path, self.args.resume)?),
            None => None,
        };
        let (mut training, mut images) = (Duration::ZERO, 0);
        let mut steps_this_run = 0;
        let config = self.batch_config(true);
        while self.position.epoch < self.args.epochs {
            let epoch = self.position.epoch;
            let loader = Prefetcher::new(&self.train, &config, epoch, self.position.batch, 2);
            let bar = epoch_bar(epoch, self.args.epochs, loader.batches_in_epoch(), self.position.batch);
            let mut tally = Tally::default();
            let start = Instant::now();
            for batch in loader {
                let labels = batch.labels.clone();
                let index = batch.index;
                let (x, y) = batch.into_tensors(&self.device);
                let logits =
                    self.model.forward(&x, Mode::train(step_seed(self.args.seed, self.position.step)));
                let loss = logits.cross_entropy(&y);
                let grads = loss.backward();
                let loss_value = loss.item().map_err(|err| err.to_string())?;
                if !loss_value.is_finite() {
                    bar.abandon();
                    return Err(self.non_finite(loss_value));
                }
                self.optimizer.step(&self.model, &grads);
                let predicted = metrics::predictions(&logits).map_err(|err| err.to_string())?;
                let correct = predicted.iter().zip(&labels).filter(|(p, l)| p == l).count();
                tally.add(labels.len(), loss_value, correct);
                self.position.batch = index + 1;
                self.position.step += 1;
                steps_this_run += 1;
                bar.inc(1);
                bar.set_message(bar_message(&tally, tally.seen() as f64 / start.elapsed().as_secs_f64()));
                if self.args.checkpoint_every.is_some_and(|every| self.position.step % every == 0) {
                    self.save()?;
                }
                let out_of_steps = self.args.max_steps.is_some_and(|max| steps_this_run >= max);
                if out_of_steps || self.interrupted.load(Ordering::Relaxed) {
                    bar.abandon();
                    self.save()?;
                    let why = if out_of_steps { "reached --max-steps" } else { "interrupted" };
                    let message = format!(
                        "{why}: checkpoint saved to {} at epoch {}, batch {} (step {}); continue with --resume",
                        self.args.checkpoint.display(),
                        epoch + 1,
                        self.position.batch,
                        self.position.step
                    );
                    return Ok(Ending::Paused(Paused { message, interrupted: !out_of_steps }));
                }
            }
            bar.finish_and_clear();
            let seconds = start.elapsed().as_secs_f64();
            training += start.elapsed();
            images += tally.seen();
            self.position = Position { epoch: epoch + 1, batch: 0, step: self.position.step };
            let (test, _) = self.evaluate()?;
            let record = EpochRecord {
                epoch: epoch + 1,
                train: tally.score(),
                test,
                seconds,
                images_per_second: tally.seen() as f64 / seconds.max(1e-9),
            };
            println!("{}", record.line(self.args.epochs));
            if let Some(file) = metrics_file.as_mut() {
                write_metrics(file, &record)?;
            }
            self.save()?;
        }
        Ok(Ending::Finished { training, images })
    }

    /// The message for a loss that became NaN or infinite.
    fn non_finite(&self, loss: f32) -> String {
        let checkpoint = match self.last_saved_step {
            Some(step) => format!(
                "the last good checkpoint, {} (step {step}), is intact",
                self.args.checkpoint.display()
            ),
            None => "no checkpoint had been saved yet".to_string(),
        };
        format!(
            "the loss became {loss} at epoch {}, step {}: training stopped; {checkpoint}. Try a lower --lr.",
            self.position.epoch + 1,
            self.position.step + 1
        )
    }

    /// Loss, accuracy and confusion matrix on the test split, in evaluation mode.
    pub fn evaluate(&self) -> Result<(Score, ConfusionMatrix), String> {
        let mut tally = Tally::default();
        let mut matrix = ConfusionMatrix::new(kiln_data::CLASS_NAMES.len());
        for batch in Prefetcher::new(&self.test, &self.batch_config(false), 0, 0, 2) {
            let labels = batch.labels.clone();
            let (x, y) = batch.into_tensors(&self.device);
            let logits = no_grad(|| self.model.forward(&x, Mode::Eval));
            let loss = no_grad(|| logits.cross_entropy(&y)).item().map_err(|err| err.to_string())?;
            let predicted = metrics::predictions(&logits).map_err(|err| err.to_string())?;
            let mut correct = 0;
            for (&p, &t) in predicted.iter().zip(&labels) {
                matrix.add(t as usize, p as usize);
                correct += usize::from(p == t);
            }
            tally.add(labels.len(), loss, correct);
        }
        Ok((tally.score(), matrix))
    }
}

/// Loads only the model from `path` (for --eval-only).
pub fn load_model(path: &Path, model: &mut Sequential) -> Result<(), String> {
    checkpoint::load(path, model, None).map(|_| ()).map_err(|err| format!("cannot evaluate: {err}"))
}
