//! `DistError`: what can go wrong starting a data-parallel run, each with what to do.

use std::fmt;

/// An error starting a data-parallel run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DistError {
    /// This build has no MPI (the `mpi` cargo feature is off).
    NoMpiSupport,
    /// The process was not started by an MPI launcher.
    NotLaunched,
    /// MPI was already initialized in this process.
    AlreadyInitialized,
    /// The global batch cannot be split evenly over the processes.
    IndivisibleBatch {
        /// Global batch size.
        batch: usize,
        /// Processes.
        processes: usize,
    },
}

impl fmt::Display for DistError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DistError::NoMpiSupport => write!(
                f,
                "this build has no MPI support; rebuild with `cargo build --release -p alexnet-example --features mpi` (needs Open MPI or MPICH: apt install openmpi-bin libopenmpi-dev libclang-dev)"
            ),
            DistError::NotLaunched => write!(
                f,
                "--distributed needs an MPI launcher: start it as `mpirun -n N <program> --distributed ...` (or srun under Slurm)"
            ),
            DistError::AlreadyInitialized => write!(f, "MPI was already initialized in this process"),
            DistError::IndivisibleBatch { batch, processes } => write!(
                f,
                "the batch size {batch} does not divide evenly over {processes} processes; use a multiple of {processes}"
            ),
        }
    }
}

impl std::error::Error for DistError {}
