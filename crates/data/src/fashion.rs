//! Fashion-MNIST in memory: 60,000 training and 10,000 test images of 28×28 bytes with
//! their labels (47 MB as raw bytes; images are resized a batch at a time, never all
//! at once).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::idx::{ImageSize, read_images, read_labels};
use crate::locate::{FASHION_MNIST_FILES, FASHION_MNIST_MIRROR, SearchPaths, locate_or_download};
use crate::{DataError, Result};

/// The ten classes, by label.
pub const CLASS_NAMES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// The size of every Fashion-MNIST image.
pub const IMAGE_SIZE: ImageSize = ImageSize { rows: 28, cols: 28 };

/// Images and labels of one split. Cloning shares the bytes; [`Split::limit`] views a
/// prefix without copying.
#[derive(Clone, Debug)]
pub struct Split {
    images: Arc<Vec<u8>>,
    labels: Arc<Vec<u8>>,
    len: usize,
    rows: usize,
    cols: usize,
}

impl Split {
    /// A split from raw row-major images (`len × rows × cols` bytes) and labels.
    pub fn new(images: Vec<u8>, labels: Vec<u8>, rows: usize, cols: usize) -> Self {
        assert_eq!(images.len(), labels.len() * rows * cols, "Split::new: images and labels disagree");
        Split { len: labels.len(), images: Arc::new(images), labels: Arc::new(labels), rows, cols }
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the split is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Image height.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Image width.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The pixels of example `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let size = self.rows * self.cols;
        &self.images[i * size..(i + 1) * size]
    }

    /// The label of example `i`.
    pub fn label(&self, i: usize) -> u8 {
        self.labels[i]
    }

    /// The first `n` examples (all of them if `n` is larger).
    pub fn limit(&self, n: usize) -> Split {
        Split { len: n.min(self.len), ..self.clone() }
    }

    /// `n` examples drawn at random without replacement (all of them when `n` is at
    /// least the length), seeded, kept in file order; a copy.
    pub fn sample(&self, n: usize, seed: u64) -> Split {
        let mut chosen: Vec<usize> = (0..self.len).collect();
        kiln_tensor::Rng::new(seed).shuffle(&mut chosen);
        chosen.truncate(n);
        chosen.sort_unstable();
        let images = chosen.iter().flat_map(|&i| self.image(i).iter().copied()).collect();
        let labels = chosen.iter().map(|&i| self.label(i)).collect();
        Split::new(images, labels, self.rows, self.cols)
    }

    /// How many examples each label has.
    pub fn class_counts(&self, classes: usize) -> Vec<usize> {
        let mut counts = vec![0; classes];
        self.labels[..self.len].iter().for_each(|&l| counts[l as usize] += 1);
        counts
    }
}

/// The Fashion-MNIST dataset.
///
/// ```no_run
/// use kiln_data::{BatchConfig, FashionMnist, Pass, Prefetcher};
/// use kiln_cpu::CpuDevice;
/// use kiln_tensor::Device;
///
/// // Found on disk, or downloaded into the user cache and checked (SHA-256).
/// let data = FashionMnist::load(None)?;
/// assert_eq!((data.train.len(), data.test.len()), (60_000, 10_000));
/// let device = Device::cpu();
/// // Shuffled batches of 64 images resized to 32×32, prepared by 2 worker threads.
/// for batch in Prefetcher::new(&data.train, &BatchConfig::shuffled(64, 32).with_seed(42), Pass::epoch(0)).take(1) {
///     let (images, labels) = batch.into_tensors(&device);
///     assert_eq!(images.dims(), &[64, 1, 32, 32]);
///     assert_eq!(labels.dims(), &[64]);
/// }
/// # Ok::<(), kiln_data::DataError>(())
/// ```
#[derive(Clone, Debug)]
pub struct FashionMnist {
    /// 60,000 training examples.
    pub train: Split,
    /// 10,000 test examples.
    pub test: Split,
    /// The directory the files were read from.
    pub dir: PathBuf,
}

impl FashionMnist {
    /// Finds the dataset (an explicit directory, `KILN_DATA_DIR`, the cache, Debian's
    /// package) or downloads it into the cache, then loads it.
    pub fn load(explicit_dir: Option<&Path>) -> Result<Self> {
        let dir = locate_or_download(
            &SearchPaths::from_env(explicit_dir),
            FASHION_MNIST_MIRROR,
            &FASHION_MNIST_FILES,
        )?;
        Self::load_dir(&dir)
    }

    /// Loads the four files from `dir`, validating them: 28×28 images, labels in
    /// `0..10`, as many labels as images, and at least one example per split.
    pub fn load_dir(dir: &Path) -> Result<Self> {
        let split = |images: &str, labels: &str| -> Result<Split> {
            let (image_path, label_path) = (dir.join(images), dir.join(labels));
            let labels = read_labels(&label_path, CLASS_NAMES.len())?;
            let images = read_images(&image_path, Some(IMAGE_SIZE))?;
            if labels.len() != images.count {
                return Err(DataError::CountMismatch {
                    images: image_path,
                    image_count: images.count,
                    labels: label_path,
                    label_count: labels.len(),
                });
            }
            if labels.is_empty() {
                return Err(DataError::Format {
                    path: image_path,
                    reason: "it holds no images: a split needs at least one example".into(),
                });
            }
            Ok(Split::new(images.pixels, labels, IMAGE_SIZE.rows, IMAGE_SIZE.cols))
        };
        Ok(FashionMnist {
            train: split("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")?,
            test: split("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")?,
            dir: dir.to_path_buf(),
        })
    }
}
