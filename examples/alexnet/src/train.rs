//! The training run: epochs of steps under the recipe's learning-rate schedule and
//! loss, with checkpoints (every N steps, at each epoch end, on Ctrl-C or --max-steps)
//! and the best epoch's model kept beside them, resuming at the saved epoch and batch
//! with the epoch's running sums and the history plotted, stopping when the loss, the
//! test loss or the parameters become non-finite, and evaluation on the test set
//! (which Ctrl-C also interrupts). In a data-parallel run every process runs the same
//! loop on its shard of each batch: gradients are averaged and the step's loss,
//! accuracy and stop flags summed across the processes, so they all stop together;
//! only rank 0 writes checkpoints, metrics and plots.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kiln_data::{BatchConfig, EpochPlan, Normalize, Order, Pass, Prefetcher, Shard, Split};
use kiln_dist::DataParallel;
use kiln_nn::{
    ConfusionMatrix, LrSchedule, Mode, Module, NnError, Optimizer, Sequential, checkpoint, metrics,
};
use kiln_tensor::{Device, Gradients, Rng, no_grad};

use crate::args::Args;
use crate::history::{EpochPoint, History, RunningPoint};
use crate::plots;
use crate::recipe::{Recipe, Sampling};
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
    /// All epochs ran; `last` is the last epoch's evaluation, when this run made one.
    Finished { training: Duration, images: usize, last: Option<(Score, ConfusionMatrix)> },
    /// Stopped early (Ctrl-C or --max-steps) after saving a checkpoint.
    Paused(Paused),
    /// Stopped because the loss or the test loss became non-finite; every process of a
    /// data-parallel run sees it at the same step (the loss is summed across them). The
    /// message says where and which checkpoint is intact.
    Diverged(String),
}

/// A run stopped early with its checkpoint saved.
pub struct Paused {
    /// What happened and how to continue.
    pub message: String,
    /// Stopped by Ctrl-C (rather than by --max-steps).
    pub interrupted: bool,
}

/// The checkpoint at --checkpoint that this run wrote or resumed from.
#[derive(Clone, Copy, Debug)]
struct SavedCheckpoint {
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

/// Settings a checkpoint must share with the run that resumes it.
const RUN_KEYS: [&str; 6] = ["seed", "image_size", "batch_size", "train_size", "recipe", INPUT_KEY];

/// Metadata key of the pixel standardization the model was trained with.
const INPUT_KEY: &str = "input_normalization";

/// Running-loss points plotted per epoch.
const RUNNING_POINTS_PER_EPOCH: usize = 25;

/// The training and test images of a run.
pub struct Splits {
    /// What the model trains on.
    pub train: Split,
    /// What it is scored on.
    pub test: Split,
}

/// Everything a run needs.
pub struct Trainer<'a> {
    pub args: &'a Args,
    pub recipe: &'a Recipe,
    /// The run's processes (one, unless --distributed).
    pub parallel: &'a DataParallel,
    pub device: Device,
    pub model: Sequential,
    pub optimizer: Box<dyn Optimizer>,
    pub train: Split,
    pub test: Split,
    pub position: Position,
    pub interrupted: Arc<AtomicBool>,
    /// The pixel standardization of the model's inputs.
    pub input: Option<Normalize>,
    /// Scores so far, for the plots and the best checkpoint.
    pub history: History,
    /// Running sums of the epoch in progress.
    tally: Tally,
    /// Training seconds the epoch in progress had before this run resumed it.
    carried_seconds: f64,
    /// The checkpoint on disk, when this run saved or resumed one.
    last_saved: Option<SavedCheckpoint>,
    /// A --checkpoint-every save is waiting for the next step's loss: it is written
    /// once that loss shows the model finite, so that a run that diverges never leaves
    /// a checkpoint of the diverged model behind.
    save_waiting: bool,
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
        recipe: &'a Recipe,
        parallel: &'a DataParallel,
        device: Device,
        model: Sequential,
        optimizer: Box<dyn Optimizer>,
        Splits { train, test }: Splits,
    ) -> Self {
        Trainer {
            args,
            recipe,
            parallel,
            device,
            model,
            optimizer,
            train,
            test,
            position: Position::default(),
            interrupted: Arc::new(AtomicBool::new(false)),
            input: recipe.input_normalization(),
            history: History::default(),
            tally: Tally::default(),
            carried_seconds: 0.0,
            last_saved: None,
            save_waiting: false,
        }
    }

    fn run_settings(&self) -> BTreeMap<String, String> {
        let a = self.args;
        let values = [
            a.seed.to_string(),
            a.image_size.to_string(),
            self.recipe.batch_size.to_string(),
            self.train.len().to_string(),
            format!("{:?}", self.recipe.preset).to_lowercase(),
            input_description(self.input),
        ];
        RUN_KEYS.iter().map(|k| k.to_string()).zip(values).collect()
    }

    /// Saves model, optimizer, position and the epoch's running sums to --checkpoint,
    /// `epoch_seconds` being the training time of the epoch in progress, and whether
    /// the model has given a finite loss. A model that became non-finite is not saved:
    /// that ends training with the divergence message.
    fn save(&mut self, epoch_seconds: f64, loss_checked: bool) -> Result<(), String> {
        self.save_waiting = false;
        let saved = SavedCheckpoint { step: self.position.step, loss_checked };
        if !self.parallel.is_root() {
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
        match checkpoint::save(&self.args.checkpoint, &self.model, Some(self.optimizer.as_ref()), &meta) {
            Ok(()) => {
                self.last_saved = Some(saved);
                Ok(())
            }
            Err(NnError::NonFinite { name, .. }) => {
                Err(self.diverged(&format!("`{name}` became NaN or infinite by step {}", self.position.step)))
            }
            Err(err) => Err(err.to_string()),
        }
    }

    /// Restores model, optimizer and position from --checkpoint, refusing a checkpoint
    /// saved with other settings. Rank 0 reads the file and sends it to the others, so
    /// the other processes need not see rank 0's files.
    pub fn resume(&mut self) -> Result<(), String> {
        let path = &self.args.checkpoint;
        let bytes = rank0_file(self.parallel, path).map_err(|err| format!("cannot resume: {err}"))?;
        let meta = checkpoint::load_bytes(&bytes, path, &mut self.model, Some(self.optimizer.as_mut()))
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
        self.tally = Tally::from_metadata(&meta).map_err(|err| format!("cannot resume: {err}"))?;
        self.history = History::from_metadata(&meta).map_err(|err| format!("cannot resume: {err}"))?;
        self.carried_seconds = meta.get(EPOCH_SECONDS).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        let loss_checked = meta.get(LOSS_CHECKED).is_some_and(|v| v == "true");
        self.last_saved = Some(SavedCheckpoint { step: self.position.step, loss_checked });
        Ok(())
    }

    /// Called when the model as it is now (before this step's update) gave a finite
    /// loss: marks the checkpoint on disk as checked when it holds this model, and
    /// writes a --checkpoint-every save that was waiting for this loss.
    fn model_gave_finite_loss(&mut self, epoch_seconds: f64) -> Result<(), String> {
        if let Some(saved) = self.last_saved.as_mut().filter(|saved| saved.step == self.position.step) {
            saved.loss_checked = true;
        }
        if self.save_waiting { self.save(epoch_seconds, true) } else { Ok(()) }
    }

    /// How training epochs are cut into batches.
    fn training_batches(&self) -> BatchConfig {
        let order = match self.recipe.sampling {
            Sampling::Shuffle => Order::Shuffle,
            Sampling::Draws { draw } => {
                Order::WithReplacement { draws: (self.train.len() / draw).max(1) * draw }
            }
        };
        BatchConfig {
            order,
            augment: self.recipe.augment.augment(),
            normalize: self.input,
            shard: self.shard(),
            ..BatchConfig::shuffled(self.recipe.batch_size, self.args.image_size).with_seed(self.args.seed)
        }
    }

    /// This process's part of every batch.
    fn shard(&self) -> Shard {
        Shard::new(self.parallel.rank(), self.parallel.size())
    }

    /// The best checkpoint's path for this run's --checkpoint.
    pub fn best_checkpoint_path(&self) -> PathBuf {
        best_checkpoint_path(&self.args.checkpoint)
    }

    /// Saves the model (without optimizer state) to the best checkpoint (rank 0 only).
    fn save_best(&self, epoch: &EpochPoint) -> Result<(), String> {
        if !self.parallel.is_root() {
            return Ok(());
        }
        let mut meta = BTreeMap::new();
        meta.insert("epoch".into(), epoch.epoch.to_string());
        meta.insert("test_accuracy".into(), epoch.test.accuracy.to_string());
        meta.insert(INPUT_KEY.into(), input_description(self.input));
        checkpoint::save(&self.best_checkpoint_path(), &self.model, None, &meta)
            .map_err(|err| err.to_string())
    }

    /// Trains from the current position to the last epoch.
    pub fn train(&mut self) -> Result<Ending, String> {
        let root = self.parallel.is_root();
        let mut metrics_file: Option<File> = match &self.args.metrics {
            Some(path) if root => Some(open_metrics(path, self.args.resume)?),
            _ => None,
        };
        let (mut training, mut images) = (Duration::ZERO, 0);
        let mut steps_this_run = 0;
        let mut last = None;
        let config = self.training_batches();
        let steps_per_epoch = EpochPlan::new(&self.train, &config, 0).batches();
        let schedule = self.recipe.lr_schedule(self.args.epochs, steps_per_epoch);
        let window = steps_per_epoch.div_ceil(RUNNING_POINTS_PER_EPOCH);
        while self.position.epoch < self.args.epochs {
            let epoch = self.position.epoch;
            let loader =
                Prefetcher::new(&self.train, &config, Pass::epoch(epoch).from_batch(self.position.batch));
            let bar = epoch_bar(epoch, self.args.epochs, loader.batches_in_epoch(), self.position.batch);
            if !root {
                bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
            }
            let start = Instant::now();
            let epoch_seconds = |carried: f64| carried + start.elapsed().as_secs_f64();
            for batch in loader {
                let index = batch.index;
                let lr = schedule.learning_rate(self.position.step);
                self.optimizer.set_learning_rate(lr);
                let share = batch.len() as f32 / batch.whole_len as f32;
                let (mut grads, local) = self.train_shard(batch)?;
                // One small collective per step: the whole batch's loss and accuracy, and
                // whether any process was interrupted, so that all stop at the same step.
                let interrupted = self.interrupted.load(Ordering::Relaxed);
                let [loss_sum, correct, seen] = local.sums();
                let mut sums = [loss_sum, correct, seen, f64::from(u8::from(interrupted))];
                self.parallel.sum(&mut sums);
                let [loss_sum, correct, seen, interrupted] = sums;
                let loss_value = (loss_sum / seen) as f32;
                if !loss_value.is_finite() {
                    bar.abandon();
                    return Ok(Ending::Diverged(self.diverged(&format!(
                        "the loss became {loss_value} at step {}",
                        self.position.step + 1
                    ))));
                }
                self.model_gave_finite_loss(epoch_seconds(self.carried_seconds))
                    .inspect_err(|_| bar.abandon())?;
                self.parallel
                    .average_gradients(&self.model, &mut grads, share)
                    .map_err(|err| err.to_string())?;
                self.optimizer.step(&self.model, &grads);
                self.tally.add(seen as usize, loss_value, correct as usize);
                images += seen as usize;
                self.position.batch = index + 1;
                self.position.step += 1;
                let at_epoch = epoch as f64 + self.position.batch as f64 / steps_per_epoch as f64;
                let close_window = self.position.step.is_multiple_of(window);
                let step = RunningPoint { loss: loss_value as f64, at_epoch, lr: lr as f64 };
                self.history.add_step(step, close_window);
                steps_this_run += 1;
                bar.inc(1);
                let speed = (self.tally.seen() as f64) / epoch_seconds(self.carried_seconds);
                bar.set_message(bar_message(&self.tally, speed));
                if self.recipe.checkpoint_every.is_some_and(|every| self.position.step.is_multiple_of(every))
                {
                    self.save_waiting = true;
                }
                let out_of_steps = self.args.max_steps.is_some_and(|max| steps_this_run >= max);
                if out_of_steps || interrupted > 0.0 {
                    bar.abandon();
                    let why = if out_of_steps { "reached --max-steps" } else { "interrupted" };
                    return self.pause(why, epoch_seconds(self.carried_seconds), !out_of_steps);
                }
            }
            bar.finish_and_clear();
            training += start.elapsed();
            self.carried_seconds = epoch_seconds(self.carried_seconds);
            let Some((test, matrix)) = self.evaluate()? else {
                return self.pause("interrupted during evaluation", self.carried_seconds, true);
            };
            if !test.loss.is_finite() {
                return Ok(Ending::Diverged(self.diverged(&format!(
                    "the test loss became {} after epoch {}",
                    test.loss,
                    epoch + 1
                ))));
            }
            let seconds = self.carried_seconds;
            let lr = self.optimizer.learning_rate() as f64;
            let record = EpochRecord {
                epoch: epoch + 1,
                train: self.tally.score(),
                test,
                seconds,
                images_per_second: self.tally.seen() as f64 / seconds.max(1e-9),
                lr,
            };
            let point = EpochPoint { epoch: epoch + 1, train: record.train, test, lr };
            let improved = self.history.best().is_none_or(|best| test.accuracy > best.test.accuracy);
            self.history.epochs.push(point);
            if root {
                println!("{}", record.line(self.args.epochs));
            }
            if let Some(file) = metrics_file.as_mut() {
                write_metrics(file, &record)?;
            }
            self.position = Position { epoch: epoch + 1, batch: 0, step: self.position.step };
            self.tally = Tally::default();
            self.carried_seconds = 0.0;
            if improved {
                self.save_best(&point)?;
            }
            // The finite test loss above is this model's check.
            self.save(0.0, true)?;
            if root {
                plots::training(&self.args.plots_dir().join(plots::TRAINING_FILE), &self.history)?;
            }
            last = Some((test, matrix));
        }
        Ok(Ending::Finished { training, images, last })
    }

    /// Forward and backward on this process's shard of a batch: the gradients and the
    /// shard's loss sum, right answers and size (all empty for an empty shard).
    fn train_shard(&self, batch: kiln_data::Batch) -> Result<(Gradients, Tally), String> {
        let mut local = Tally::default();
        if batch.is_empty() {
            return Ok((Gradients::default(), local));
        }
        let labels = batch.labels.clone();
        let first_sample = batch.first_sample as u64;
        let (x, y) = batch.into_tensors(&self.device);
        let mode = Mode::train(step_seed(self.args.seed, self.position.step)).with_first_sample(first_sample);
        let logits = self.model.forward(&x, mode);
        let loss = self.recipe.output.training_loss(&logits, &y);
        let grads = loss.backward();
        let loss_value = loss.item().map_err(|err| err.to_string())?;
        let predicted = metrics::predictions(&logits).map_err(|err| err.to_string())?;
        let correct = predicted.iter().zip(&labels).filter(|(p, l)| p == l).count();
        local.add(labels.len(), loss_value, correct);
        Ok((grads, local))
    }

    /// Saves a checkpoint and describes the pause (`why`: what stopped the run).
    fn pause(&mut self, why: &str, epoch_seconds: f64, interrupted: bool) -> Result<Ending, String> {
        // Saved before a loss of this model was seen: the run that resumes it checks it
        // on its first step.
        self.save(epoch_seconds, false)?;
        let message = format!(
            "{why}: checkpoint saved to {} at epoch {}, batch {} (step {}); continue with --resume",
            self.args.checkpoint.display(),
            self.position.epoch + 1,
            self.position.batch,
            self.position.step
        );
        Ok(Ending::Paused(Paused { message, interrupted }))
    }

    /// The message for a run that diverged (`what` says how it showed).
    fn diverged(&self, what: &str) -> String {
        let path = self.args.checkpoint.display();
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

    /// Loss, accuracy and confusion matrix on the test split, in evaluation mode;
    /// `None` when Ctrl-C interrupted it.
    pub fn evaluate(&self) -> Result<Option<(Score, ConfusionMatrix)>, String> {
        let mut tally = Tally::default();
        let mut matrix = ConfusionMatrix::new(kiln_data::CLASS_NAMES.len());
        let config = BatchConfig {
            normalize: self.input,
            shard: self.shard(),
            ..BatchConfig::in_order(self.recipe.batch_size, self.args.image_size)
        };
        for batch in Prefetcher::new(&self.test, &config, Pass::epoch(0)) {
            if self.interrupted.load(Ordering::Relaxed) && self.parallel.size() == 1 {
                return Ok(None);
            }
            if batch.is_empty() {
                continue;
            }
            let labels = batch.labels.clone();
            let (x, y) = batch.into_tensors(&self.device);
            let logits = no_grad(|| self.model.forward(&x, Mode::Eval));
            let loss = no_grad(|| self.recipe.output.test_loss(&logits, &y))
                .item()
                .map_err(|err| err.to_string())?;
            let predicted = metrics::predictions(&logits).map_err(|err| err.to_string())?;
            let mut correct = 0;
            for (&p, &t) in predicted.iter().zip(&labels) {
                matrix.add(t as usize, p as usize);
                correct += usize::from(p == t);
            }
            tally.add(labels.len(), loss, correct);
        }
        if self.parallel.size() > 1 {
            let interrupted = self.interrupted.load(Ordering::Relaxed);
            (tally, matrix) = summed(self.parallel, &tally, &matrix, interrupted);
            if tally.seen() == 0 {
                return Ok(None);
            }
        }
        Ok(Some((tally.score(), matrix)))
    }
}

/// The evaluation sums of all processes: tallies and confusion matrices added up, or
/// an empty tally when any process was interrupted.
fn summed(
    parallel: &DataParallel,
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
    parallel.sum(&mut sums);
    let mut total = ConfusionMatrix::new(classes);
    for (cell, count) in sums[4..].iter().enumerate() {
        total.add_count(cell / classes, cell % classes, *count as u64);
    }
    let tally = if sums[3] > 0.0 { Tally::default() } else { Tally::from_sums([sums[0], sums[1], sums[2]]) };
    (tally, total)
}

/// The best checkpoint's path: `{stem}-best.safetensors` beside `checkpoint`.
pub fn best_checkpoint_path(checkpoint: &Path) -> PathBuf {
    let stem = checkpoint.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    checkpoint.with_file_name(format!("{stem}-best.safetensors"))
}

/// How a checkpoint's metadata describes the input standardization.
fn input_description(input: Option<Normalize>) -> String {
    match input {
        Some(Normalize { mean, std }) => format!("{mean},{std}"),
        None => "none".into(),
    }
}

/// The bytes of the file at `path` as rank 0 reads them, on every process (so the
/// others need not see rank 0's files).
fn rank0_file(parallel: &DataParallel, path: &Path) -> Result<Vec<u8>, String> {
    let mut bytes = if parallel.is_root() {
        std::fs::read(path).map_err(|err| format!("cannot read {}: {err}", path.display()))?
    } else {
        Vec::new()
    };
    parallel.broadcast_bytes(&mut bytes);
    Ok(bytes)
}

/// Loads only the model from `path` as rank 0 reads it (for --eval-only), with the
/// input standardization it was trained with (none for a checkpoint that does not say).
pub fn load_model(
    parallel: &DataParallel,
    path: &Path,
    model: &mut Sequential,
) -> Result<Option<Normalize>, String> {
    let bytes = rank0_file(parallel, path).map_err(|err| format!("cannot evaluate: {err}"))?;
    let meta =
        checkpoint::load_bytes(&bytes, path, model, None).map_err(|err| format!("cannot evaluate: {err}"))?;
    let Some(text) = meta.get(INPUT_KEY).filter(|t| t.as_str() != "none") else { return Ok(None) };
    let values: Vec<f32> = text.split(',').filter_map(|v| v.parse().ok()).collect();
    match values[..] {
        [mean, std] if std > 0.0 => Ok(Some(Normalize { mean, std })),
        _ => Err(format!("cannot evaluate: {}'s `{INPUT_KEY}` is malformed: {text}", path.display())),
    }
}
