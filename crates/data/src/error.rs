//! `DataError`: every way reading, finding or downloading a dataset can fail, each
//! naming the file and what was wrong.

use std::fmt;
use std::path::PathBuf;

/// An error from `kiln-data`.
#[derive(Debug)]
pub enum DataError {
    /// A file could not be read or written.
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A gzip stream is corrupt or cut short.
    Gzip {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        reason: String,
    },
    /// The IDX header or size is not what the file claims to be.
    Format {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// Images and labels do not pair up.
    CountMismatch {
        /// The image file.
        images: PathBuf,
        /// How many images it holds.
        image_count: usize,
        /// The label file.
        labels: PathBuf,
        /// How many labels it holds.
        label_count: usize,
    },
    /// A label outside `0..classes`.
    LabelOutOfRange {
        /// The label file.
        path: PathBuf,
        /// Which example.
        index: usize,
        /// Its label.
        label: u8,
        /// How many classes there are.
        classes: usize,
    },
    /// A downloaded file does not have the pinned SHA-256.
    HashMismatch {
        /// Where it came from.
        url: String,
        /// The pinned digest.
        expected: String,
        /// The digest of what arrived.
        found: String,
    },
    /// A download failed.
    Download {
        /// What was asked for.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// Examples given in memory do not fit together (values, shape and labels).
    BadExamples {
        /// What was wrong.
        reason: String,
    },
    /// The dataset is in none of the places looked at, and could not be downloaded.
    NotFound {
        /// Every directory searched, in order.
        searched: Vec<PathBuf>,
        /// Why the download failed.
        download: Box<DataError>,
    },
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            DataError::Gzip { path, reason } => {
                write!(f, "{}: corrupt or truncated gzip data ({reason})", path.display())
            }
            DataError::Format { path, reason } => {
                write!(f, "{}: not a valid IDX file: {reason}", path.display())
            }
            DataError::CountMismatch { images, image_count, labels, label_count } => write!(
                f,
                "{} holds {image_count} images but {} holds {label_count} labels",
                images.display(),
                labels.display()
            ),
            DataError::LabelOutOfRange { path, index, label, classes } => {
                write!(f, "{}: label {label} of example {index} is outside 0..{classes}", path.display())
            }
            DataError::HashMismatch { url, expected, found } => write!(
                f,
                "{url}: downloaded data has SHA-256 {found}, expected {expected} (corrupt or tampered download)"
            ),
            DataError::Download { url, reason } => write!(f, "downloading {url} failed: {reason}"),
            DataError::BadExamples { reason } => write!(f, "{reason}"),
            DataError::NotFound { searched, download } => {
                writeln!(f, "Fashion-MNIST was not found. Looked in:")?;
                for dir in searched {
                    writeln!(f, "  {}", dir.display())?;
                }
                writeln!(f, "and the download failed: {download}")?;
                write!(
                    f,
                    "Ways out: `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or put the four \
                     *-ubyte.gz files in a directory and pass it with --data-dir (or KILN_DATA_DIR)."
                )
            }
        }
    }
}

impl std::error::Error for DataError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DataError::Io { source, .. } => Some(source),
            DataError::NotFound { download, .. } => Some(download.as_ref()),
            _ => None,
        }
    }
}

/// Result of a `kiln-data` operation.
pub type Result<T> = std::result::Result<T, DataError>;
