//! `KilnError`: what fallible tensor operations (device set-up, reading data back) return.

use std::fmt;

/// An error from a fallible tensor operation. Shape mistakes in arithmetic are bugs in
/// the caller's model and panic instead, naming the op and both shapes.
#[derive(Debug)]
pub enum KilnError {
    /// A device could not be created or used (no adapter, out of memory, device lost).
    Device(String),
    /// Data was asked for in a type the tensor does not hold.
    DType {
        /// What the caller asked for.
        expected: crate::DType,
        /// What the tensor holds.
        found: crate::DType,
    },
    /// An input/output operation failed.
    Io(std::io::Error),
}

impl fmt::Display for KilnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KilnError::Device(msg) => write!(f, "device error: {msg}"),
            KilnError::DType { expected, found } => {
                write!(f, "expected a tensor of {expected}, found {found}")
            }
            KilnError::Io(err) => write!(f, "i/o error: {err}"),
        }
    }
}

impl std::error::Error for KilnError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            KilnError::Io(err) => Some(err),
            _ => None,
        }
    }
}

impl From<std::io::Error> for KilnError {
    fn from(err: std::io::Error) -> Self {
        KilnError::Io(err)
    }
}

/// Result of a fallible Kiln operation.
pub type Result<T> = std::result::Result<T, KilnError>;
