//! # kiln-train
//!
//! The trainer of Kiln: any classification [`Module`](kiln_nn::Module) trained on any
//! [`Dataset`](kiln_data::Dataset), with everything that makes a run trustworthy —
//! a progress bar and a line per epoch, checkpoints that survive `kill -9` (replaced
//! atomically) and the best epoch's model beside them, exact resume (same batches, same
//! dropout masks, same running sums), pauses on Ctrl-C, SIGTERM and SIGUSR1
//! ([`StopSignals`]), a stop on a non-finite loss that names the last good checkpoint,
//! a JSON-lines metrics file, PNG plots of the curves and of the confusion matrix, and
//! data-parallel runs over MPI ([`kiln_dist::DataParallel`]). Keras' `fit`, Lightning's
//! `Trainer`, Burn's `Learner`.
//!
//! ```
//! use kiln_cpu::CpuDevice;
//! use kiln_data::TensorDataset;
//! use kiln_nn::{Dense, Initializer, OneCycle, ReLU, Sequential, Sgd};
//! use kiln_tensor::Device;
//! use kiln_train::{CrossEntropy, Ending, PlotsDir, Trainer};
//!
//! // XOR-like data: the class is whether the two features have the same sign.
//! let points: Vec<[f32; 2]> = (0..256).map(|i| [(i % 16) as f32 / 7.5 - 1.0, (i / 16) as f32 / 7.5 - 1.0]).collect();
//! let labels = points.iter().map(|p| i32::from(p[0] * p[1] > 0.0)).collect();
//! let data = TensorDataset::new(points.concat(), [2], labels).unwrap();
//!
//! let device = Device::cpu();
//! let mut init = Initializer::new(&device, 7);
//! let model = Sequential::new().push(Dense::new(&mut init, 2, 32)).push(ReLU).push(Dense::new(&mut init, 32, 2));
//! let dir = tempfile::tempdir().unwrap();
//! let mut trainer = Trainer::builder(model, data.clone().shuffled(), data)
//!     .epochs(30)
//!     .batch_size(32)
//!     .optimizer(Box::new(Sgd::new(0.2).with_momentum(0.9)))
//!     .schedule(|length| OneCycle { max: 0.2, rise_steps: length.total_steps() / 4, steps: length.total_steps() })
//!     .loss(CrossEntropy { label_smoothing: 0.0 })
//!     .checkpoint(dir.path().join("xor.safetensors"))
//!     .plots(PlotsDir::Off)
//!     .progress(false)
//!     .build()
//!     .unwrap();
//! let Ending::Finished(finished) = trainer.fit().unwrap() else { panic!("the run did not finish") };
//! assert!(finished.last.unwrap().score.accuracy > 0.9);
//! assert!(dir.path().join("xor-best.safetensors").is_file());
//! ```

mod config;
mod error;
mod history;
mod loss;
pub mod memory;
pub mod plots;
mod report;
mod signals;
mod trainer;

pub use config::{PlotsDir, Purpose, TrainConfig, best_checkpoint_path};
pub use error::{Result, TrainError};
pub use history::{EpochPoint, History, RunningPoint};
pub use loss::{CrossEntropy, Loss};
pub use report::{EpochRecord, Score, final_report};
pub use signals::{INTERRUPTED, StopSignals, TERMINATED};
pub use trainer::{Ending, Evaluation, Finished, Paused, Position, Trainer, TrainerBuilder, TrainingLength};
