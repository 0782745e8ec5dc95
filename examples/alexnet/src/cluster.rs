//! The processes of the run: one alone, or with `--distributed` those an MPI launcher
//! started (the `mpi` feature), joined through kiln-dist's `DataParallel`.

use kiln_dist::{DataParallel, SingleProcess};

use crate::args::Args;

/// The run's processes: a single one unless `--distributed`. Fails with a one-line
/// message when `--distributed` cannot work (no MPI in this build, no MPI launcher);
/// every process fails alike, before any process knows its rank.
pub fn join(args: &Args) -> Result<DataParallel, String> {
    if !args.distributed {
        return Ok(DataParallel::new(Box::new(SingleProcess)));
    }
    Ok(DataParallel::new(mpi_world()?))
}

#[cfg(feature = "mpi")]
fn mpi_world() -> Result<Box<dyn kiln_dist::Collective>, String> {
    Ok(Box::new(kiln_dist::MpiWorld::init().map_err(|err| err.to_string())?))
}

#[cfg(not(feature = "mpi"))]
fn mpi_world() -> Result<Box<dyn kiln_dist::Collective>, String> {
    Err(kiln_dist::DistError::NoMpiSupport.to_string())
}
