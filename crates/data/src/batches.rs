//! Epochs of batches: a seeded shuffle without replacement, batches of resized images
//! scaled to `[0, 1]` with their labels, and the choice to keep or drop a last partial
//! batch.

use kiln_tensor::{Device, Rng, Tensor};

use crate::Split;
use crate::resize::{AxisWeights, resize_into};

/// How an epoch is cut into batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchConfig {
    /// Examples per batch.
    pub batch_size: usize,
    /// Side of the square images produced (28 keeps the original size).
    pub image_size: usize,
    /// Shuffle each epoch (from `seed` and the epoch number) or keep the file order.
    pub shuffle: bool,
    /// Seed of the shuffles.
    pub seed: u64,
    /// Drop a last batch smaller than `batch_size`.
    pub drop_last: bool,
}

/// One batch on the host: `images` is `[len, 1, size, size]` row-major in `[0, 1]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// Position of the batch in its epoch.
    pub index: usize,
    /// Pixels, `[len, 1, image_size, image_size]`.
    pub images: Vec<f32>,
    /// Labels, `[len]`.
    pub labels: Vec<i32>,
    /// Side of the images.
    pub image_size: usize,
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

    /// The batch as tensors on `device`: images `[N, 1, S, S]` and i32 labels `[N]`.
    pub fn into_tensors(self, device: &Device) -> (Tensor, Tensor) {
        let (n, s) = (self.len(), self.image_size);
        (Tensor::from_vec([n, 1, s, s], self.images, device), Tensor::from_i32([n], self.labels, device))
    }
}

/// The example order of one epoch and how it is cut into batches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochPlan {
    order: Vec<usize>,
    batch_size: usize,
    batches: usize,
}

impl EpochPlan {
    /// The plan for epoch `epoch` of `split`: a permutation drawn from
    /// `(config.seed, epoch)` when shuffling, so the same seed gives the same order.
    pub fn new(split: &Split, config: &BatchConfig, epoch: usize) -> Self {
        assert!(config.batch_size > 0, "batch size must be positive");
        let mut order: Vec<usize> = (0..split.len()).collect();
        if config.shuffle {
            Rng::new(config.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)).shuffle(&mut order);
        }
        let batches = if config.drop_last {
            split.len() / config.batch_size
        } else {
            split.len().div_ceil(config.batch_size)
        };
        EpochPlan { order, batch_size: config.batch_size, batches }
    }

    /// Number of batches.
    pub fn batches(&self) -> usize {
        self.batches
    }

    /// The example indices of batch `b`.
    pub fn indices(&self, b: usize) -> &[usize] {
        let start = b * self.batch_size;
        &self.order[start..(start + self.batch_size).min(self.order.len())]
    }
}

/// Builds batch `b` of `plan`: resizes its images and gathers its labels.
pub fn make_batch(split: &Split, plan: &EpochPlan, b: usize, image_size: usize) -> Batch {
    let indices = plan.indices(b);
    let pixels = image_size * image_size;
    let rows = AxisWeights::new(split.rows(), image_size);
    let cols = AxisWeights::new(split.cols(), image_size);
    let mut images = vec![0.0; indices.len() * pixels];
    for (&i, out) in indices.iter().zip(images.chunks_mut(pixels)) {
        resize_into(split.image(i), split.cols(), &rows, &cols, out);
    }
    let labels = indices.iter().map(|&i| split.label(i) as i32).collect();
    Batch { index: b, images, labels, image_size }
}
