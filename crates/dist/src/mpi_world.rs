//! `MpiWorld`: the collective operations on MPI's world communicator (rsmpi), for runs
//! started by `mpirun`, `mpiexec` or `srun`.

use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, CommunicatorCollectives, Root};

use crate::{Collective, DistError};

/// Variables an MPI launcher sets in every process it starts (Open MPI, MPICH/Hydra,
/// PMIx, PMI-1/2 under Slurm).
const LAUNCHER_VARIABLES: [&str; 4] = ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"];

/// MPI's world: every process of the run. Dropping it finalizes MPI.
pub struct MpiWorld {
    world: SimpleCommunicator,
    _universe: Universe,
}

impl MpiWorld {
    /// Whether an MPI launcher started this process.
    pub fn launched() -> bool {
        LAUNCHER_VARIABLES.iter().any(|name| std::env::var_os(name).is_some())
    }

    /// Initializes MPI; fails unless an MPI launcher started this process (a lone
    /// process would otherwise quietly train alone) or when MPI is already initialized.
    pub fn init() -> Result<Self, DistError> {
        if !Self::launched() {
            return Err(DistError::NotLaunched);
        }
        let universe = mpi::initialize().ok_or(DistError::AlreadyInitialized)?;
        Ok(MpiWorld { world: universe.world(), _universe: universe })
    }
}

impl Collective for MpiWorld {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    fn size(&self) -> usize {
        self.world.size() as usize
    }

    fn all_reduce_sum_f32(&self, values: &mut [f32]) {
        let send = values.to_vec();
        self.world.all_reduce_into(&send[..], values, SystemOperation::sum());
    }

    fn all_reduce_sum_f64(&self, values: &mut [f64]) {
        let send = values.to_vec();
        self.world.all_reduce_into(&send[..], values, SystemOperation::sum());
    }

    fn broadcast_f32(&self, values: &mut [f32]) {
        self.world.process_at_rank(0).broadcast_into(values);
    }

    fn broadcast_bytes(&self, bytes: &mut Vec<u8>) {
        let root = self.world.process_at_rank(0);
        let mut len = bytes.len() as u64;
        root.broadcast_into(&mut len);
        bytes.resize(len as usize, 0);
        // Every process now knows the length; MPI refuses an empty vector's dangling
        // buffer, and there is nothing to send anyway.
        if len > 0 {
            root.broadcast_into(&mut bytes[..]);
        }
    }

    fn barrier(&self) {
        self.world.barrier();
    }

    fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}
