//! `NnError`: what building, shaping, loading and saving models can go wrong with, each
//! variant saying what was wrong and naming the tensor or file.

use std::fmt;
use std::path::PathBuf;

use kiln_tensor::{KilnError, Shape};

/// An error from `kiln-nn`.
#[derive(Debug)]
pub enum NnError {
    /// An input shape a layer cannot take (e.g. an image too small for its poolings).
    Shape(String),
    /// A checkpoint lacks a tensor the model needs.
    MissingTensor {
        /// The checkpoint file.
        path: PathBuf,
        /// The parameter name, e.g. `features.0.weight`.
        name: String,
    },
    /// A checkpoint holds a tensor the model does not have.
    UnexpectedTensor {
        /// The checkpoint file.
        path: PathBuf,
        /// The tensor's name in the file.
        name: String,
    },
    /// A checkpoint tensor has another shape than the model's parameter.
    ShapeMismatch {
        /// The checkpoint file.
        path: PathBuf,
        /// The parameter name.
        name: String,
        /// The model's shape.
        expected: Shape,
        /// The file's shape.
        found: Shape,
    },
    /// A checkpoint tensor is not f32.
    DTypeMismatch {
        /// The checkpoint file.
        path: PathBuf,
        /// The parameter name.
        name: String,
        /// The file's dtype, as safetensors names it.
        found: String,
    },
    /// A file that is not a readable safetensors checkpoint (truncated, corrupt, or
    /// another format), or whose metadata is not Kiln's.
    BadCheckpoint {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// Optimizer state that cannot be restored (another optimizer's, or incomplete).
    OptimizerState(String),
    /// Reading or writing a file failed.
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Writing a checkpoint failed (the previous file at `path`, if any, is intact).
    Save {
        /// The checkpoint file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A tensor to be saved holds NaN or infinity: the model diverged.
    NonFinite {
        /// The checkpoint file.
        path: PathBuf,
        /// The tensor's name, e.g. `features.0.weight`.
        name: String,
    },
    /// A device operation failed.
    Device(KilnError),
}

impl fmt::Display for NnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NnError::Shape(msg) => f.write_str(msg),
            NnError::MissingTensor { path, name } => {
                write!(f, "checkpoint {}: missing tensor `{name}` that the model needs", path.display())
            }
            NnError::UnexpectedTensor { path, name } => write!(
                f,
                "checkpoint {}: unexpected tensor `{name}` that the model does not have (was it saved from another model?)",
                path.display()
            ),
            NnError::ShapeMismatch { path, name, expected, found } => write!(
                f,
                "checkpoint {}: tensor `{name}` has shape {found} but the model expects {expected}",
                path.display()
            ),
            NnError::DTypeMismatch { path, name, found } => {
                write!(f, "checkpoint {}: tensor `{name}` is {found}, expected F32", path.display())
            }
            NnError::BadCheckpoint { path, reason } => {
                write!(f, "{} is not a valid Kiln checkpoint: {reason}", path.display())
            }
            NnError::OptimizerState(msg) => write!(f, "optimizer state: {msg}"),
            NnError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            NnError::Save { path, source } => {
                write!(f, "cannot save the checkpoint {}: {source}", path.display())
            }
            NnError::NonFinite { path, name } => write!(
                f,
                "not saving the checkpoint {}: `{name}` holds NaN or infinite values (the model diverged)",
                path.display()
            ),
            NnError::Device(err) => write!(f, "{err}"),
        }
    }
}

impl std::error::Error for NnError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NnError::Io { source, .. } | NnError::Save { source, .. } => Some(source),
            NnError::Device(err) => Some(err),
            _ => None,
        }
    }
}

impl From<KilnError> for NnError {
    fn from(err: KilnError) -> Self {
        NnError::Device(err)
    }
}

/// Result of a `kiln-nn` operation.
pub type Result<T> = std::result::Result<T, NnError>;
