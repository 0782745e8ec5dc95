//! Data-parallel training for Kiln: N processes, each with a copy of the model and a
//! shard of every batch, compute what one process with the whole batch computes.
//!
//! - [`Collective`] is the handful of collective operations this needs (all-reduce,
//!   broadcast, barrier, abort); [`SingleProcess`] is the trivial one, and [`MpiWorld`] (cargo
//!   feature `mpi`) runs them on MPI through rsmpi, under `mpirun`, Slurm or any MPI
//!   launcher.
//! - [`DataParallel`] owns a collective and does the model-level work: it broadcasts
//!   rank 0's parameters, averages gradients after `backward()` in fixed-order buckets
//!   (each process weighted by its share of the batch, so unequal shards still give
//!   the whole batch's mean), sums metrics and sends checkpoint bytes.
//!
//! `kiln-nn` and `kiln-tensor` know nothing of this: the training loop calls
//! [`DataParallel::average_gradients`] between `backward()` and the optimizer step.
//! Each process's shard of a batch is `kiln_data::Shard::new(rank, size)`, and its
//! dropout masks follow from `Mode::with_first_sample`, so the masks do not depend on
//! the process.
//!
//! ```
//! use kiln_cpu::CpuDevice;
//! use kiln_dist::{DataParallel, SingleProcess};
//! use kiln_nn::{Dense, Initializer, Mode, Module};
//! use kiln_tensor::{Device, Tensor};
//!
//! let device = Device::cpu();
//! let mut model = Dense::new(&mut Initializer::new(&device, 0), 3, 2);
//! let parallel = DataParallel::new(Box::new(SingleProcess));
//! parallel.broadcast_parameters(&mut model).unwrap();
//! let x = Tensor::randn([4, 3], 1, &device);
//! let labels = Tensor::from_i32([4], vec![0, 1, 1, 0], &device);
//! let mut grads = model.forward(&x, Mode::train(0)).cross_entropy(&labels).backward();
//! parallel.average_gradients(&model, &mut grads, 1.0).unwrap();
//! assert_eq!(grads.len(), 2);
//! ```

mod collective;
mod data_parallel;
mod error;
#[cfg(feature = "mpi")]
mod mpi_world;

pub use collective::{Collective, SingleProcess};
pub use data_parallel::{DEFAULT_BUCKET_BYTES, DataParallel};
pub use error::DistError;
#[cfg(feature = "mpi")]
pub use mpi_world::MpiWorld;

/// Whether this build can run on MPI (the `mpi` feature).
pub const HAS_MPI: bool = cfg!(feature = "mpi");
