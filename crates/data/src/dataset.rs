//! The `Dataset` trait a training loop draws its batches from, and its two
//! implementations: [`ImageDataset`] (a [`Split`] of grayscale images, resized,
//! augmented, standardized and prepared in the background) and [`TensorDataset`]
//! (examples already in memory as `f32` values, PyTorch's `TensorDataset`).

use std::sync::Arc;

use kiln_tensor::{Rng, Shape};

use crate::augment::Augment;
use crate::batches::{Batch, BatchConfig, Normalize, Order, Shard, epoch_rng};
use crate::prefetch::{Pass, Prefetcher};
use crate::{DataError, Result, Split};

/// What a training loop asks a dataset for: the batches of one epoch, from
/// `first_batch` on, this process's shard of each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochRequest {
    /// The epoch (with `seed`, it fixes a shuffled epoch's order).
    pub epoch: usize,
    /// The first batch wanted (a resumed run skips the earlier ones).
    pub first_batch: usize,
    /// Examples per batch (all shards together).
    pub batch_size: usize,
    /// The run's seed.
    pub seed: u64,
    /// This process's part of every batch ([`Shard::WHOLE`] for one process).
    pub shard: Shard,
}

impl EpochRequest {
    /// Epoch `epoch` in batches of `batch_size`, from the first batch, seed 0, one
    /// process.
    pub fn new(epoch: usize, batch_size: usize) -> Self {
        EpochRequest { epoch, first_batch: 0, batch_size, seed: 0, shard: Shard::WHOLE }
    }
}

/// A labelled classification dataset cut into batches: what the trainer trains and
/// evaluates on. Implement it for data of your own, or use [`ImageDataset`] or
/// [`TensorDataset`].
pub trait Dataset: Send + Sync {
    /// Number of examples.
    fn len(&self) -> usize;

    /// Whether there are no examples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shape of one example, without the batch dimension.
    fn example_shape(&self) -> Shape;

    /// The name of every class, indexed by label.
    fn class_names(&self) -> Vec<String>;

    /// Batches in one epoch of batches of `batch_size`.
    fn batches_per_epoch(&self, batch_size: usize) -> usize;

    /// The batches `request` asks for, in order; `Batch::index` is each one's position
    /// in the epoch.
    fn epoch(&self, request: EpochRequest) -> Box<dyn Iterator<Item = Batch> + '_>;
}

/// The class names `0`, `1`, … of `classes` classes.
fn numbered_classes(classes: usize) -> Vec<String> {
    (0..classes).map(|c| c.to_string()).collect()
}

/// A [`Split`] of grayscale images as a [`Dataset`]: each image resized to
/// `image_size`², optionally augmented and standardized, in file order unless another
/// [`Order`] is set, prepared a batch or two ahead on worker threads.
///
/// ```no_run
/// use kiln_data::{Dataset, EpochRequest, FashionMnist, ImageDataset, CLASS_NAMES};
///
/// let data = FashionMnist::load(None)?;
/// let train = ImageDataset::new(data.train, 28).shuffled().with_class_names(&CLASS_NAMES);
/// let first = train.epoch(EpochRequest::new(0, 128)).next().unwrap();
/// assert_eq!(first.example_shape.dims(), &[1, 28, 28]);
/// # Ok::<(), kiln_data::DataError>(())
/// ```
#[derive(Clone, Debug)]
pub struct ImageDataset {
    split: Split,
    image_size: usize,
    order: Order,
    augment: Augment,
    normalize: Option<Normalize>,
    class_names: Vec<String>,
}

impl ImageDataset {
    /// The images of `split` resized to `image_size`², every one once in file order,
    /// unchanged, pixels in `[0, 1]`, classes named by number.
    pub fn new(split: Split, image_size: usize) -> Self {
        let classes =
            split.class_counts(usize::from(u8::MAX) + 1).iter().rposition(|&n| n > 0).map_or(0, |c| c + 1);
        ImageDataset {
            split,
            image_size,
            order: Order::InOrder,
            augment: Augment::NONE,
            normalize: None,
            class_names: numbered_classes(classes),
        }
    }

    /// The same, visited in `order` each epoch.
    pub fn with_order(self, order: Order) -> Self {
        ImageDataset { order, ..self }
    }

    /// The same in a new permutation each epoch.
    pub fn shuffled(self) -> Self {
        self.with_order(Order::Shuffle)
    }

    /// The same with random changes to each image.
    pub fn with_augment(self, augment: Augment) -> Self {
        ImageDataset { augment, ..self }
    }

    /// The same with the pixels standardized (`None`: kept in `[0, 1]`).
    pub fn with_normalize(self, normalize: Option<Normalize>) -> Self {
        ImageDataset { normalize, ..self }
    }

    /// The same with these class names (label `i` is `names[i]`).
    pub fn with_class_names(self, names: &[&str]) -> Self {
        ImageDataset { class_names: names.iter().map(|n| n.to_string()).collect(), ..self }
    }

    /// The images.
    pub fn split(&self) -> &Split {
        &self.split
    }

    /// The pixel standardization applied, if any.
    pub fn normalize(&self) -> Option<Normalize> {
        self.normalize
    }

    /// The batch settings of `request`.
    fn config(&self, request: &EpochRequest) -> BatchConfig {
        BatchConfig {
            order: self.order,
            augment: self.augment,
            normalize: self.normalize,
            shard: request.shard,
            ..BatchConfig::shuffled(request.batch_size, self.image_size).with_seed(request.seed)
        }
    }
}

impl Dataset for ImageDataset {
    fn len(&self) -> usize {
        self.split.len()
    }

    fn example_shape(&self) -> Shape {
        Shape::from([1, self.image_size, self.image_size])
    }

    fn class_names(&self) -> Vec<String> {
        self.class_names.clone()
    }

    fn batches_per_epoch(&self, batch_size: usize) -> usize {
        let examples = match self.order {
            Order::WithReplacement { draws } => draws,
            Order::InOrder | Order::Shuffle => self.split.len(),
        };
        examples.div_ceil(batch_size)
    }

    fn epoch(&self, request: EpochRequest) -> Box<dyn Iterator<Item = Batch> + '_> {
        let pass = Pass::epoch(request.epoch).from_batch(request.first_batch);
        Box::new(Prefetcher::new(&self.split, &self.config(&request), pass))
    }
}

/// Examples already in memory: `len` examples of `example_shape` as `f32` values,
/// row-major, with a class label each; in order, or shuffled each epoch.
///
/// ```
/// use kiln_data::{Dataset, EpochRequest, TensorDataset};
///
/// // Four examples of two features, two classes.
/// let inputs = vec![0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0];
/// let data = TensorDataset::new(inputs, [2], vec![0, 1, 1, 0]).unwrap().shuffled();
/// let batches: Vec<_> = data.epoch(EpochRequest::new(0, 3)).collect();
/// assert_eq!((batches.len(), batches[0].len(), batches[1].len()), (2, 3, 1));
/// assert_eq!(data.class_names(), ["0", "1"]);
/// ```
#[derive(Clone, Debug)]
pub struct TensorDataset {
    inputs: Arc<Vec<f32>>,
    labels: Arc<Vec<i32>>,
    example_shape: Shape,
    shuffle: bool,
    class_names: Vec<String>,
}

impl TensorDataset {
    /// `labels.len()` examples of `example_shape` from `inputs`, in order; classes
    /// named by number up to the largest label. Fails unless `inputs` holds exactly
    /// that many values and every label is 0 or more.
    pub fn new(inputs: Vec<f32>, example_shape: impl Into<Shape>, labels: Vec<i32>) -> Result<Self> {
        let example_shape = example_shape.into();
        let expected = labels.len() * example_shape.numel();
        if inputs.len() != expected {
            return Err(DataError::BadExamples {
                reason: format!(
                    "TensorDataset: {} labels of examples shaped {example_shape} need {expected} values, got {}",
                    labels.len(),
                    inputs.len()
                ),
            });
        }
        if let Some(index) = labels.iter().position(|&l| l < 0) {
            return Err(DataError::BadExamples {
                reason: format!("TensorDataset: label {} of example {index} is negative", labels[index]),
            });
        }
        let classes = labels.iter().max().map_or(0, |&l| l as usize + 1);
        Ok(TensorDataset {
            inputs: Arc::new(inputs),
            labels: Arc::new(labels),
            example_shape,
            shuffle: false,
            class_names: numbered_classes(classes),
        })
    }

    /// The same in a new permutation each epoch.
    pub fn shuffled(self) -> Self {
        TensorDataset { shuffle: true, ..self }
    }

    /// The same with these class names (label `i` is `names[i]`).
    pub fn with_class_names(self, names: &[&str]) -> Self {
        TensorDataset { class_names: names.iter().map(|n| n.to_string()).collect(), ..self }
    }

    /// The example order of an epoch.
    fn order(&self, request: &EpochRequest) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.labels.len()).collect();
        if self.shuffle {
            let mut rng: Rng = epoch_rng(request.seed, request.epoch);
            rng.shuffle(&mut order);
        }
        order
    }

    /// Batch `index` of an epoch in `order`: this process's shard of it.
    fn batch(&self, order: &[usize], index: usize, request: &EpochRequest) -> Batch {
        let start = index * request.batch_size;
        let whole = &order[start..(start + request.batch_size).min(order.len())];
        let shard = request.shard.range(whole.len());
        let size = self.example_shape.numel();
        let picked = &whole[shard.clone()];
        let inputs =
            picked.iter().flat_map(|&i| self.inputs[i * size..(i + 1) * size].iter().copied()).collect();
        Batch {
            index,
            first_sample: shard.start,
            whole_len: whole.len(),
            inputs,
            labels: picked.iter().map(|&i| self.labels[i]).collect(),
            example_shape: self.example_shape.clone(),
        }
    }
}

impl Dataset for TensorDataset {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn example_shape(&self) -> Shape {
        self.example_shape.clone()
    }

    fn class_names(&self) -> Vec<String> {
        self.class_names.clone()
    }

    fn batches_per_epoch(&self, batch_size: usize) -> usize {
        self.labels.len().div_ceil(batch_size)
    }

    fn epoch(&self, request: EpochRequest) -> Box<dyn Iterator<Item = Batch> + '_> {
        let order = self.order(&request);
        let batches = self.batches_per_epoch(request.batch_size);
        Box::new((request.first_batch..batches).map(move |index| self.batch(&order, index, &request)))
    }
}
