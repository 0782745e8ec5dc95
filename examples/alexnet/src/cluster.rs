//! The processes of the run: one alone, or with `--distributed` those an MPI launcher
//! started (the `mpi` feature), joined through kiln-dist's `DataParallel`.

use kiln_dist::{DataParallel, SingleProcess};

use crate::args::Args;

/// Why the run's processes could not be joined.
pub struct JoinError {
    /// The one-line message.
    pub message: String,
    /// Whether this process is the one to print it (every process of the run fails
    /// alike; only rank 0, or a process that could not learn its rank, says so).
    pub report: bool,
}

/// The run's processes: a single one unless `--distributed`. Fails with a one-line
/// message when `--distributed` cannot work (no MPI in this build, no MPI launcher, a
/// batch that does not split evenly).
pub fn join(args: &Args, batch_size: usize) -> Result<DataParallel, JoinError> {
    if !args.distributed {
        return Ok(DataParallel::new(Box::new(SingleProcess)));
    }
    let parallel = DataParallel::new(mpi_world().map_err(|message| JoinError { message, report: true })?);
    parallel
        .check_batch_size(batch_size)
        .map_err(|err| JoinError { message: err.to_string(), report: parallel.is_root() })?;
    Ok(parallel)
}

#[cfg(feature = "mpi")]
fn mpi_world() -> Result<Box<dyn kiln_dist::Collective>, String> {
    Ok(Box::new(kiln_dist::MpiWorld::init().map_err(|err| err.to_string())?))
}

#[cfg(not(feature = "mpi"))]
fn mpi_world() -> Result<Box<dyn kiln_dist::Collective>, String> {
    Err(kiln_dist::DistError::NoMpiSupport.to_string())
}
