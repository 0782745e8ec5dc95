//! # kiln-data
//!
//! Datasets for Kiln: the [`Dataset`] trait a training loop draws batches from (with
//! [`ImageDataset`] for image splits and [`TensorDataset`] for examples in memory), the
//! IDX format (gzip or raw), Fashion-MNIST found on disk or downloaded and verified,
//! epochs of shuffled (or drawn) batches resized to any square size with optional
//! augmentation (random flips and shifts), and a background prefetcher so the training
//! step never waits for data.
//!
//! ```no_run
//! use kiln_data::{BatchConfig, FashionMnist, Pass, Prefetcher, CLASS_NAMES};
//!
//! let data = FashionMnist::load(None)?; // --data-dir, KILN_DATA_DIR, cache, Debian, download
//! let config = BatchConfig::shuffled(128, 224).with_seed(1);
//! for batch in Prefetcher::new(&data.train, &config, Pass::epoch(0)) {
//!     println!("{} images, first is a {}", batch.len(), CLASS_NAMES[batch.labels[0] as usize]);
//! }
//! # Ok::<(), kiln_data::DataError>(())
//! ```

mod augment;
mod batches;
mod dataset;
mod error;
mod fashion;
mod http;
pub mod idx;
pub mod locate;
mod prefetch;
pub mod resize;
mod sha256;

pub use augment::Augment;
pub use batches::{Batch, BatchConfig, EpochPlan, Normalize, Order, Shard, make_batch};
pub use dataset::{Dataset, EpochRequest, ImageDataset, TensorDataset};
pub use error::{DataError, Result};
pub use fashion::{CLASS_NAMES, FashionMnist, IMAGE_SIZE, Split};
pub use locate::{DatasetFile, SearchPaths};
pub use prefetch::{Pass, Prefetcher};
pub use sha256::sha256_hex;
