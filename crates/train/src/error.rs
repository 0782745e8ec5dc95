//! `TrainError`: how a training run fails, as a one-line message that says what was
//! wrong and what to do.

use std::fmt;

/// A training run that could not start or could not go on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrainError {
    /// Refused before any work, alike on every process of a data-parallel run: an
    /// impossible setting, an output file that cannot be written, a checkpoint to
    /// resume that does not exist.
    Refused(String),
    /// This process failed during the run (a checkpoint that does not fit the model, a
    /// file that cannot be written, a device error); in a data-parallel run the others
    /// may not have failed.
    Failed(String),
}

impl TrainError {
    /// The message.
    pub fn message(&self) -> &str {
        match self {
            TrainError::Refused(message) | TrainError::Failed(message) => message,
        }
    }
}

impl fmt::Display for TrainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for TrainError {}

impl From<String> for TrainError {
    fn from(message: String) -> Self {
        TrainError::Failed(message)
    }
}

/// Result of a training operation.
pub type Result<T> = std::result::Result<T, TrainError>;
