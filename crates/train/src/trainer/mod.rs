//! The training run: epochs of steps under a learning-rate schedule and a loss, with
//! checkpoints (every N steps, at each epoch end, on a stop signal or `max_steps`) and
//! the best epoch's model kept beside them, resuming at the saved epoch and batch with
//! the epoch's running sums and the history plotted, stopping when the loss, the test
//! loss or the parameters become non-finite. In a data-parallel run every process runs
//! the same loop on its shard of each batch: gradients are averaged and the step's
//! loss, accuracy and stop flag summed across the processes, so they all stop together;
//! only rank 0 writes checkpoints, metrics and plots, and prints.

mod builder;
mod checkpoints;
mod evaluate;

use std::collections::BTreeMap;
use std::fs::File;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kiln_data::{Batch, Dataset, EpochRequest, Shard};
use kiln_dist::DataParallel;
use kiln_nn::{LrSchedule, Mode, Module, Optimizer, metrics};
use kiln_tensor::{Device, Gradients, Rng};

pub use builder::TrainerBuilder;
pub use evaluate::Evaluation;

use crate::config::TrainConfig;
use crate::history::{EpochPoint, History, RunningPoint};
use crate::report::{EpochRecord, Tally, bar_message, epoch_bar, open_metrics, write_metrics};
use crate::{Loss, Result, TrainError, plots};
use checkpoints::SavedCheckpoint;

/// What the steps of an epoch need to know about the run.
#[derive(Clone, Copy)]
struct RunSoFar<'r> {
    steps_per_epoch: usize,
    /// Steps per running-loss point.
    window: usize,
    /// When the epoch (or its resumed part) started.
    start: Instant,
    schedule: &'r dyn LrSchedule,
    bar: &'r indicatif::ProgressBar,
}

/// Steps and examples of this run so far.
#[derive(Clone, Copy, Debug, Default)]
struct StepCounts {
    steps: usize,
    examples: usize,
}

/// Running-loss points plotted per epoch.
const RUNNING_POINTS_PER_EPOCH: usize = 25;

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

/// How long a run is, for a learning-rate schedule made to fit it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrainingLength {
    /// Passes over the training set.
    pub epochs: usize,
    /// Steps in each.
    pub steps_per_epoch: usize,
}

impl TrainingLength {
    /// Steps in the whole run.
    pub fn total_steps(&self) -> usize {
        self.epochs * self.steps_per_epoch
    }
}

/// Makes the run's learning-rate schedule once its length is known.
type ScheduleFn = Box<dyn Fn(TrainingLength) -> Box<dyn LrSchedule> + Send + Sync>;

/// How a training run ended.
pub enum Ending {
    /// All epochs ran.
    Finished(Finished),
    /// Stopped early (a stop signal or `max_steps`) after saving a checkpoint.
    Paused(Paused),
    /// Stopped because the loss or the test loss became non-finite; every process of a
    /// data-parallel run sees it at the same step (the loss is summed across them). The
    /// message says where and which checkpoint is intact.
    Diverged(String),
}

/// A run that trained to its last epoch.
pub struct Finished {
    /// Time spent training in this run (evaluation excluded).
    pub training: Duration,
    /// Training examples seen in this run (all processes).
    pub examples: usize,
    /// The last epoch's evaluation, when this run made one.
    pub last: Option<Evaluation>,
}

/// A run stopped early with its checkpoint saved.
pub struct Paused {
    /// What happened and how to continue.
    pub message: String,
    /// Stopped by the stop flag (rather than by `max_steps`).
    pub interrupted: bool,
}

/// The processes of the run: this one alone, or a data-parallel group the caller holds.
enum Processes<'p> {
    Own(DataParallel),
    Shared(&'p DataParallel),
}

impl Deref for Processes<'_> {
    type Target = DataParallel;

    fn deref(&self) -> &DataParallel {
        match self {
            Processes::Own(own) => own,
            Processes::Shared(shared) => shared,
        }
    }
}

/// Trains a classification [`Module`] on a [`Dataset`]: Keras' `fit`, Lightning's
/// `Trainer`. Made with [`Trainer::builder`]; see the crate's example.
pub struct Trainer<'p, M: Module> {
    config: TrainConfig,
    processes: Processes<'p>,
    device: Device,
    model: M,
    optimizer: Box<dyn Optimizer>,
    schedule: ScheduleFn,
    loss: Box<dyn Loss>,
    train: Arc<dyn Dataset>,
    test: Arc<dyn Dataset>,
    stop: Arc<AtomicBool>,
    run_settings: BTreeMap<String, String>,
    position: Position,
    history: History,
    /// Running sums of the epoch in progress.
    tally: Tally,
    /// Training seconds the epoch in progress had before this run resumed it.
    carried_seconds: f64,
    /// The checkpoint on disk, when this run saved or resumed one.
    last_saved: Option<SavedCheckpoint>,
    /// A `checkpoint_every` save is waiting for the next step's loss: it is written
    /// once that loss shows the model finite, so that a run that diverges never leaves
    /// a checkpoint of the diverged model behind.
    save_waiting: bool,
}

/// The dropout seed of step `step`: fixed by the run seed, so a resumed run draws the
/// same masks as an uninterrupted one.
fn step_seed(seed: u64, step: usize) -> u64 {
    Rng::new(seed ^ (step as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)).next_u64()
}

impl<'p, M: Module> Trainer<'p, M> {
    /// A builder for a trainer of `model` on `train`, scored on `test`.
    pub fn builder(
        model: M,
        train: impl Dataset + 'static,
        test: impl Dataset + 'static,
    ) -> TrainerBuilder<'p, M> {
        TrainerBuilder::new(model, train, test)
    }

    /// The model.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// The model, to change or take away.
    pub fn into_model(self) -> M {
        self.model
    }

    /// The run's settings.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Where training stands (after a resume: where the checkpoint left it).
    pub fn position(&self) -> Position {
        self.position
    }

    /// Every finished epoch's scores and the running training loss.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// The device the batches go to.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The class names of the test set.
    pub fn class_names(&self) -> Vec<String> {
        self.test.class_names()
    }

    /// The epoch request for the batches of this process.
    fn request(&self, epoch: usize, first_batch: usize) -> EpochRequest {
        EpochRequest {
            epoch,
            first_batch,
            batch_size: self.config.batch_size,
            seed: self.config.seed,
            shard: Shard::new(self.processes.rank(), self.processes.size()),
        }
    }

    /// Whether this process prints and writes files.
    fn is_root(&self) -> bool {
        self.processes.is_root()
    }

    /// Trains from the current position to the last epoch.
    pub fn fit(&mut self) -> Result<Ending> {
        let root = self.is_root();
        let mut metrics_file: Option<File> = match &self.config.metrics {
            Some(path) if root => Some(open_metrics(path, self.config.resume)?),
            _ => None,
        };
        let mut training = Duration::ZERO;
        let mut counts = StepCounts::default();
        let mut last = None;
        let epochs = self.config.epochs;
        let steps_per_epoch = self.train.batches_per_epoch(self.config.batch_size);
        let schedule = (self.schedule)(TrainingLength { epochs, steps_per_epoch });
        let window = steps_per_epoch.div_ceil(RUNNING_POINTS_PER_EPOCH);
        while self.position.epoch < epochs {
            let epoch = self.position.epoch;
            let bar = epoch_bar(epoch, epochs, steps_per_epoch, self.position.batch);
            if !root || !self.config.progress {
                bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
            }
            let start = Instant::now();
            let epoch_seconds = |carried: f64| carried + start.elapsed().as_secs_f64();
            let train = Arc::clone(&self.train);
            let run = RunSoFar { steps_per_epoch, window, start, schedule: &*schedule, bar: &bar };
            let ended =
                self.train_epoch(train.epoch(self.request(epoch, self.position.batch)), run, &mut counts);
            if let Some(ending) = ended? {
                bar.abandon();
                return Ok(ending);
            }
            bar.finish_and_clear();
            training += start.elapsed();
            self.carried_seconds = epoch_seconds(self.carried_seconds);
            // Every process evaluates (and rank 0 saves) rank 0's running statistics.
            self.processes
                .broadcast_buffers(&mut self.model)
                .map_err(|err| TrainError::Failed(err.to_string()))?;
            let Some(evaluation) = self.evaluate()? else {
                return self.pause("interrupted during evaluation", self.carried_seconds, true);
            };
            let test = evaluation.score;
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
            if root && self.config.progress {
                println!("{}", record.line(epochs));
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
            if let Some(path) = self.config.training_plot().filter(|_| root) {
                plots::training(&path, &self.history)?;
            }
            last = Some(evaluation);
        }
        Ok(Ending::Finished(Finished { training, examples: counts.examples, last }))
    }

    /// Runs the steps of one epoch's `batches`; `Some` when the run ends inside it.
    fn train_epoch(
        &mut self,
        batches: Box<dyn Iterator<Item = Batch> + '_>,
        run: RunSoFar,
        counts: &mut StepCounts,
    ) -> Result<Option<Ending>> {
        let RunSoFar { steps_per_epoch, window, start, schedule, bar } = run;
        let epoch = self.position.epoch;
        let epoch_seconds = |carried: f64| carried + start.elapsed().as_secs_f64();
        for batch in batches {
            let index = batch.index;
            let lr = schedule.learning_rate(self.position.step);
            self.optimizer.set_learning_rate(lr);
            let share = batch.len() as f32 / batch.whole_len as f32;
            let (mut grads, local) = self.train_shard(batch)?;
            // One small collective per step: the whole batch's loss and accuracy, and
            // whether any process was interrupted, so that all stop at the same step.
            let interrupted = self.stop.load(Ordering::Relaxed);
            let [loss_sum, correct, seen] = local.sums();
            let mut sums = [loss_sum, correct, seen, f64::from(u8::from(interrupted))];
            self.processes.sum(&mut sums);
            let [loss_sum, correct, seen, interrupted] = sums;
            let loss_value = (loss_sum / seen) as f32;
            if !loss_value.is_finite() {
                return Ok(Some(Ending::Diverged(self.diverged(&format!(
                    "the loss became {loss_value} at step {}",
                    self.position.step + 1
                )))));
            }
            self.model_gave_finite_loss(epoch_seconds(self.carried_seconds))?;
            self.processes
                .average_gradients(&self.model, &mut grads, share)
                .map_err(|err| TrainError::Failed(err.to_string()))?;
            self.optimizer.step(&self.model, &grads);
            self.tally.add(seen as usize, loss_value, correct as usize);
            counts.examples += seen as usize;
            self.position.batch = index + 1;
            self.position.step += 1;
            let at_epoch = epoch as f64 + self.position.batch as f64 / steps_per_epoch as f64;
            let close_window = self.position.step.is_multiple_of(window);
            self.history
                .add_step(RunningPoint { loss: loss_value as f64, at_epoch, lr: lr as f64 }, close_window);
            counts.steps += 1;
            bar.inc(1);
            let speed = (self.tally.seen() as f64) / epoch_seconds(self.carried_seconds);
            bar.set_message(bar_message(&self.tally, speed));
            if self.config.checkpoint_every.is_some_and(|every| self.position.step.is_multiple_of(every)) {
                self.save_waiting = true;
            }
            let out_of_steps = self.config.max_steps.is_some_and(|max| counts.steps >= max);
            if out_of_steps || interrupted > 0.0 {
                let why = if out_of_steps { "reached --max-steps" } else { "interrupted" };
                return self.pause(why, epoch_seconds(self.carried_seconds), !out_of_steps).map(Some);
            }
        }
        Ok(None)
    }

    /// Forward and backward on this process's shard of a batch: the gradients and the
    /// shard's loss sum, right answers and size (all empty for an empty shard).
    fn train_shard(&self, batch: Batch) -> Result<(Gradients, Tally)> {
        let mut local = Tally::default();
        if batch.is_empty() {
            return Ok((Gradients::default(), local));
        }
        let labels = batch.labels.clone();
        let first_sample = batch.first_sample as u64;
        let (x, y) = batch.into_tensors(&self.device);
        let mode =
            Mode::train(step_seed(self.config.seed, self.position.step)).with_first_sample(first_sample);
        let logits = self.model.forward(&x, mode);
        let loss = self.loss.training_loss(&logits, &y);
        let grads = loss.backward();
        let failed = |err: &dyn std::fmt::Display| TrainError::Failed(err.to_string());
        let loss_value = loss.item().map_err(|e| failed(&e))?;
        let predicted = metrics::predictions(&logits).map_err(|e| failed(&e))?;
        let correct = predicted.iter().zip(&labels).filter(|(p, l)| p == l).count();
        local.add(labels.len(), loss_value, correct);
        Ok((grads, local))
    }
}
