//! `Mode`: training (with the seed that drives this step's dropout masks) or evaluation.

use kiln_tensor::Rng;

/// Whether a forward pass trains or evaluates. Training carries a seed for the step's
/// random layers (dropout), so a run is reproducible from its seed and step number, also
/// after resuming from a checkpoint, and the index of the batch's first sample within
/// the step's whole batch, so that a shard of a batch (one process of a data-parallel
/// run) draws the masks the whole batch would give those samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Training: dropout active, masks drawn from `seed`.
    Train {
        /// Seed of this forward pass.
        seed: u64,
        /// Index of this batch's first sample in the step's global batch (0 unless the
        /// batch is a shard of a larger one).
        first_sample: u64,
    },
    /// Evaluation: dropout is the identity.
    Eval,
}

impl Mode {
    /// Training with the given seed (e.g. derived from the run seed and the step).
    pub fn train(seed: u64) -> Self {
        Mode::Train { seed, first_sample: 0 }
    }

    /// The same mode for a shard of the global batch that starts at sample
    /// `first_sample` (evaluation is unchanged).
    pub fn with_first_sample(self, first_sample: u64) -> Self {
        match self {
            Mode::Train { seed, .. } => Mode::Train { seed, first_sample },
            Mode::Eval => Mode::Eval,
        }
    }

    /// Whether this is training.
    pub fn is_train(self) -> bool {
        matches!(self, Mode::Train { .. })
    }

    /// The mode for child `index` of a container: a distinct seed per child, so two
    /// dropout layers never share a mask.
    pub fn child(self, index: usize) -> Mode {
        match self {
            Mode::Train { seed, first_sample } => Mode::Train {
                seed: Rng::new(seed ^ (index as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407)).next_u64(),
                first_sample,
            },
            Mode::Eval => Mode::Eval,
        }
    }
}
