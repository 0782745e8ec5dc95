//! `TrainerBuilder`: a trainer configured in code, checked before any work.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use kiln_data::Dataset;
use kiln_dist::{DataParallel, SingleProcess};
use kiln_nn::{Constant, LrSchedule, Module, Optimizer, Sgd};
use kiln_tensor::Device;

use super::{Position, Processes, ScheduleFn, Trainer, TrainingLength};
use crate::config::{PlotsDir, Purpose, TrainConfig};
use crate::history::History;
use crate::report::Tally;
use crate::{CrossEntropy, Loss, Result, TrainError};

/// Settings of a [`Trainer`] gathered before it is built; see [`Trainer::builder`].
pub struct TrainerBuilder<'p, M: Module> {
    model: M,
    train: Arc<dyn Dataset>,
    test: Arc<dyn Dataset>,
    config: TrainConfig,
    optimizer: Option<Box<dyn Optimizer>>,
    schedule: Option<ScheduleFn>,
    loss: Box<dyn Loss>,
    device: Option<Device>,
    processes: Option<&'p DataParallel>,
    stop: Arc<AtomicBool>,
    run_settings: BTreeMap<String, String>,
}

impl<'p, M: Module> TrainerBuilder<'p, M> {
    pub(super) fn new(model: M, train: impl Dataset + 'static, test: impl Dataset + 'static) -> Self {
        TrainerBuilder {
            model,
            train: Arc::new(train),
            test: Arc::new(test),
            config: TrainConfig::default(),
            optimizer: None,
            schedule: None,
            loss: Box::new(CrossEntropy::default()),
            device: None,
            processes: None,
            stop: Arc::new(AtomicBool::new(false)),
            run_settings: BTreeMap::new(),
        }
    }

    /// Every setting of `config` at once (the individual setters change one).
    pub fn config(self, config: TrainConfig) -> Self {
        TrainerBuilder { config, ..self }
    }

    /// Passes over the training set (default 10).
    pub fn epochs(mut self, epochs: usize) -> Self {
        self.config.epochs = epochs;
        self
    }

    /// Examples per step (default 64).
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.config.batch_size = batch_size;
        self
    }

    /// Seed of the shuffles and the dropout masks (default 0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = seed;
        self
    }

    /// The checkpoint file (default `checkpoints/model.safetensors`).
    pub fn checkpoint(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.checkpoint = path.into();
        self
    }

    /// Also save a checkpoint every `steps` steps.
    pub fn checkpoint_every(mut self, steps: usize) -> Self {
        self.config.checkpoint_every = Some(steps);
        self
    }

    /// Pause after `steps` steps of this run, saving a checkpoint.
    pub fn max_steps(mut self, steps: usize) -> Self {
        self.config.max_steps = Some(steps);
        self
    }

    /// Continue from the checkpoint (loaded by [`TrainerBuilder::build`]).
    pub fn resume(mut self, resume: bool) -> Self {
        self.config.resume = resume;
        self
    }

    /// Append one JSON object per epoch to `path`.
    pub fn metrics(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.metrics = Some(path.into());
        self
    }

    /// Where the plots go (default: beside the checkpoint).
    pub fn plots(mut self, plots: PlotsDir) -> Self {
        self.config.plots = plots;
        self
    }

    /// Print the progress bar and the epoch lines (default true).
    pub fn progress(mut self, progress: bool) -> Self {
        self.config.progress = progress;
        self
    }

    /// The optimizer (default: SGD at 0.01 without momentum).
    pub fn optimizer(mut self, optimizer: Box<dyn Optimizer>) -> Self {
        self.optimizer = Some(optimizer);
        self
    }

    /// The learning rate of every step, made once the number of steps is known (default:
    /// the optimizer's own rate throughout).
    pub fn schedule<S: LrSchedule + 'static>(
        mut self,
        schedule: impl Fn(TrainingLength) -> S + Send + Sync + 'static,
    ) -> Self {
        self.schedule = Some(Box::new(move |length| Box::new(schedule(length))));
        self
    }

    /// The loss (default: [`CrossEntropy`] without smoothing).
    pub fn loss(mut self, loss: impl Loss + 'static) -> Self {
        self.loss = Box::new(loss);
        self
    }

    /// The loss, boxed.
    pub fn boxed_loss(mut self, loss: Box<dyn Loss>) -> Self {
        self.loss = loss;
        self
    }

    /// The device the batches go to (default: the device of the model's parameters;
    /// the model is moved here when it is elsewhere).
    pub fn device(mut self, device: &Device) -> Self {
        self.device = Some(device.clone());
        self
    }

    /// The processes of a data-parallel run (default: this process alone).
    pub fn data_parallel(mut self, processes: &'p DataParallel) -> Self {
        self.processes = Some(processes);
        self
    }

    /// A flag that pauses the run with a checkpoint at the next step when set (see
    /// [`crate::StopSignals`], which Ctrl-C, SIGTERM and SIGUSR1 set).
    pub fn stop_flag(mut self, stop: Arc<AtomicBool>) -> Self {
        self.stop = stop;
        self
    }

    /// A setting saved in every checkpoint that a resumed run must share (the trainer
    /// adds the seed, the batch size and the training set's size itself).
    pub fn run_setting(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.run_settings.insert(key.into(), value.into());
        self
    }

    /// Only evaluate the checkpoint's model ([`Trainer::evaluate`] after
    /// [`Trainer::load_weights`]); nothing is written but the confusion plot.
    pub fn evaluate_only(mut self) -> Self {
        self.config.purpose = Purpose::Evaluate;
        self
    }

    /// Checks the settings, the datasets and every file the run reads or writes (rank 0
    /// checks, every process gets the answer), moves the model to the device, and
    /// loads the checkpoint when resuming.
    pub fn build(self) -> Result<Trainer<'p, M>> {
        let processes = match self.processes {
            Some(shared) => Processes::Shared(shared),
            None => Processes::Own(DataParallel::new(Box::new(SingleProcess))),
        };
        let config = self.config;
        config.validate().map_err(TrainError::Refused)?;
        processes.check_batch_size(config.batch_size).map_err(|err| TrainError::Refused(err.to_string()))?;
        if config.purpose == Purpose::Train && self.train.is_empty() {
            return Err(TrainError::Refused("the training set is empty".into()));
        }
        processes.rank0_check(|| config.check_files()).map_err(TrainError::Refused)?;
        let mut model = self.model;
        let device = match self.device {
            Some(device) => device,
            None => model.named_parameters().first().map(|(_, p)| p.device().clone()).ok_or_else(|| {
                TrainError::Refused(
                    "the model has no parameters to say its device; give one with .device()".into(),
                )
            })?,
        };
        model.to_device(&device).map_err(|err| TrainError::Failed(err.to_string()))?;
        let optimizer = self.optimizer.unwrap_or_else(|| Box::new(Sgd::new(0.01)));
        let schedule = self.schedule.unwrap_or_else(|| {
            let lr = optimizer.learning_rate();
            Box::new(move |_| Box::new(Constant(lr)))
        });
        let mut trainer = Trainer {
            config,
            processes,
            device,
            model,
            optimizer,
            schedule,
            loss: self.loss,
            train: self.train,
            test: self.test,
            stop: self.stop,
            run_settings: self.run_settings,
            position: Position::default(),
            history: History::default(),
            tally: Tally::default(),
            carried_seconds: 0.0,
            last_saved: None,
            save_waiting: false,
        };
        if trainer.config.resume {
            trainer.resume()?;
        }
        Ok(trainer)
    }
}
