//! Epochs of batches: the file order, a seeded shuffle without replacement or seeded
//! draws with replacement; batches of (optionally augmented) images resized and scaled
//! to `[0, 1]` with their labels, the choice to keep or drop a last partial batch, and
//! each process's shard of every batch in data-parallel training.

use kiln_tensor::{Device, Rng, Shape, Tensor};

use crate::Split;
use crate::augment::Augment;
use crate::resize::{AxisWeights, resize_into};

/// Which examples an epoch visits, in which order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Every example once, in file order (evaluation).
    InOrder,
    /// Every example once, in a permutation drawn from the seed and the epoch.
    Shuffle,
    /// `draws` examples drawn uniformly with replacement, from the seed and the epoch
    /// (the reference notebook's sampling).
    WithReplacement {
        /// Examples per epoch.
        draws: usize,
    },
}

/// How an epoch is cut into batches.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchConfig {
    /// Examples per batch.
    pub batch_size: usize,
    /// Side of the square images produced (28 keeps the original size).
    pub image_size: usize,
    /// Which examples each epoch visits, in which order.
    pub order: Order,
    /// Seed of the shuffles, the draws and the augmentation.
    pub seed: u64,
    /// Drop a last batch smaller than `batch_size`.
    pub drop_last: bool,
    /// Random changes to each image ([`Augment::NONE`] for evaluation).
    pub augment: Augment,
    /// Standardize the pixels after scaling them to `[0, 1]` (`None`: keep `[0, 1]`).
    pub normalize: Option<Normalize>,
    /// Which part of every batch this process takes ([`Shard::WHOLE`] unless the
    /// batches are split across the processes of a data-parallel run).
    pub shard: Shard,
}

/// One process's part of every batch in a data-parallel run: of a batch of `len`
/// examples, shard `index` of `count` takes the contiguous examples
/// `index·len/count .. (index+1)·len/count` (rounded down), so the shards of all
/// processes together are exactly the batch, in order, and differ in size by at most
/// one example.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// This process's shard, `0..count`.
    pub index: usize,
    /// Number of shards (processes).
    pub count: usize,
}

impl Shard {
    /// The whole batch: one process.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Shard `index` of `count`; panics unless `index < count`.
    pub fn new(index: usize, count: usize) -> Self {
        assert!(index < count, "shard {index} of {count} does not exist");
        Shard { index, count }
    }

    /// This shard's positions in a batch of `len` examples.
    pub fn range(self, len: usize) -> std::ops::Range<usize> {
        self.index * len / self.count..(self.index + 1) * len / self.count
    }
}

/// Pixel standardization, `(x − mean) / std` (torchvision's `Normalize`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalize {
    /// Subtracted from every pixel.
    pub mean: f32,
    /// Divides every pixel after the subtraction.
    pub std: f32,
}

impl Normalize {
    /// Fashion-MNIST's training-set pixel mean and standard deviation (of values in
    /// `[0, 1]`).
    pub const FASHION_MNIST: Normalize = Normalize { mean: 0.2860, std: 0.3530 };
}

impl BatchConfig {
    /// Training batches: shuffled each epoch (seed 0; [`BatchConfig::with_seed`] sets
    /// another), the last partial batch kept, no augmentation, pixels in `[0, 1]`.
    pub fn shuffled(batch_size: usize, image_size: usize) -> Self {
        BatchConfig {
            batch_size,
            image_size,
            order: Order::Shuffle,
            seed: 0,
            drop_last: false,
            augment: Augment::NONE,
            normalize: None,
            shard: Shard::WHOLE,
        }
    }

    /// Evaluation batches: every example once in file order, unchanged.
    pub fn in_order(batch_size: usize, image_size: usize) -> Self {
        BatchConfig { order: Order::InOrder, ..Self::shuffled(batch_size, image_size) }
    }

    /// The same batches with the shuffles, draws and augmentation seeded by `seed`.
    pub fn with_seed(self, seed: u64) -> Self {
        BatchConfig { seed, ..self }
    }
}

/// One batch of labelled examples on the host (this process's shard of it in a
/// data-parallel run): `inputs` holds `len` examples of `example_shape`, row-major
/// (Fashion-MNIST's are `[1, size, size]` images with pixels in `[0, 1]`).
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// Position of the batch in its epoch.
    pub index: usize,
    /// Position of this shard's first example in the whole batch (0 without sharding).
    pub first_sample: usize,
    /// Examples in the whole batch, over all shards (`len()` without sharding).
    pub whole_len: usize,
    /// The examples' values, `[len, ..example_shape]`.
    pub inputs: Vec<f32>,
    /// Labels (class indices), `[len]`.
    pub labels: Vec<i32>,
    /// The shape of one example, without the batch dimension.
    pub example_shape: Shape,
}

impl Batch {
    /// Examples in the batch.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The batch as tensors on `device`: inputs `[N, ..example_shape]` and i32 labels
    /// `[N]`.
    pub fn into_tensors(self, device: &Device) -> (Tensor, Tensor) {
        let n = self.len();
        let dims: Vec<usize> = std::iter::once(n).chain(self.example_shape.dims().iter().copied()).collect();
        (Tensor::from_vec(dims, self.inputs, device), Tensor::from_i32([n], self.labels, device))
    }
}

/// The generator of epoch `epoch`'s order under `seed`.
pub(crate) fn epoch_rng(seed: u64, epoch: usize) -> Rng {
    Rng::new(seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// The example order of one epoch, how it is cut into batches, and how its images
/// are prepared.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochPlan {
    order: Vec<usize>,
    batch_size: usize,
    batches: usize,
    epoch: usize,
    seed: u64,
    augment: Augment,
    normalize: Option<Normalize>,
    shard: Shard,
}

impl EpochPlan {
    /// The plan for epoch `epoch` of `split`: a permutation (or draws) from
    /// `(config.seed, epoch)`, so the same seed gives the same order.
    pub fn new(split: &Split, config: &BatchConfig, epoch: usize) -> Self {
        assert!(config.batch_size > 0, "batch size must be positive");
        let mut rng = epoch_rng(config.seed, epoch);
        let order: Vec<usize> = match config.order {
            Order::InOrder => (0..split.len()).collect(),
            Order::Shuffle => {
                let mut order: Vec<usize> = (0..split.len()).collect();
                rng.shuffle(&mut order);
                order
            }
            Order::WithReplacement { draws } => {
                assert!(!split.is_empty(), "cannot draw examples from an empty split");
                (0..draws).map(|_| rng.below(split.len())).collect()
            }
        };
        let batches = if config.drop_last {
            order.len() / config.batch_size
        } else {
            order.len().div_ceil(config.batch_size)
        };
        EpochPlan {
            order,
            batch_size: config.batch_size,
            batches,
            epoch,
            seed: config.seed,
            augment: config.augment,
            normalize: config.normalize,
            shard: config.shard,
        }
    }

    /// Number of batches.
    pub fn batches(&self) -> usize {
        self.batches
    }

    /// The example indices of batch `b`, all shards.
    pub fn whole_indices(&self, b: usize) -> &[usize] {
        let start = b * self.batch_size;
        &self.order[start..(start + self.batch_size).min(self.order.len())]
    }

    /// The example indices of this process's shard of batch `b`.
    pub fn indices(&self, b: usize) -> &[usize] {
        let whole = self.whole_indices(b);
        &whole[self.shard.range(whole.len())]
    }
}

/// Builds batch `b` of `plan`: augments (when the plan says so) and resizes its images
/// and gathers its labels.
pub fn make_batch(split: &Split, plan: &EpochPlan, b: usize, image_size: usize) -> Batch {
    let whole_len = plan.whole_indices(b).len();
    let first_sample = plan.shard.range(whole_len).start;
    let indices = plan.indices(b);
    let pixels = image_size * image_size;
    let rows = AxisWeights::new(split.rows(), image_size);
    let cols = AxisWeights::new(split.cols(), image_size);
    let mut images = vec![0.0; indices.len() * pixels];
    let mut augmented = vec![0u8; split.rows() * split.cols()];
    for (k, (&i, out)) in indices.iter().zip(images.chunks_mut(pixels)).enumerate() {
        let source = if plan.augment.is_active() {
            let mut rng = Augment::rng(plan.seed, plan.epoch, b * plan.batch_size + first_sample + k);
            plan.augment.apply(split.image(i), split.rows(), split.cols(), &mut rng, &mut augmented);
            &augmented[..]
        } else {
            split.image(i)
        };
        resize_into(source, split.cols(), &rows, &cols, out);
        if let Some(Normalize { mean, std }) = plan.normalize {
            out.iter_mut().for_each(|v| *v = (*v - mean) / std);
        }
    }
    let labels = indices.iter().map(|&i| split.label(i) as i32).collect();
    let example_shape = Shape::from([1, image_size, image_size]);
    Batch { index: b, first_sample, whole_len, inputs: images, labels, example_shape }
}
