//! # kiln-nn
//!
//! Layers, models, losses, metrics, initializers, optimizers and checkpoints for Kiln.
//! Everything works on any [`kiln_tensor::Device`]: the crate depends on `kiln-tensor`
//! only.
//!
//! - [`Module`]: `forward(x, mode)`, named parameters (PyTorch's names), output shapes
//!   without running, and a Keras-style [`Summary`].
//! - Layers: [`Conv2d`], [`MaxPool2d`], [`Dense`], [`Dropout`], [`Flatten`],
//!   [`Sequential`]; activations [`ReLU`], [`Sigmoid`], [`Tanh`], [`GELU`], [`SiLU`],
//!   [`LeakyReLU`], [`Softplus`], [`ELU`], [`Identity`]; the notebook's AlexNet in
//!   [`models`].
//! - [`Initializer`] with [`Init`] schemes (Glorot, He, zeros), seeded.
//! - [`Optimizer`]s [`Sgd`] and [`Adam`] (and AdamW); per-step [`LrSchedule`]s: constant,
//!   step, multi-step, cosine, one-cycle, and linear [`Warmup`] before any of them.
//! - [`checkpoint`]: safetensors files that PyTorch loads.
//! - [`metrics`]: accuracy and a [`ConfusionMatrix`].

pub mod checkpoint;
mod error;
mod init;
mod layers;
pub mod metrics;
mod mode;
pub mod models;
mod module;
mod optim;
mod summary;

pub use error::{NnError, Result};
pub use init::{Init, Initializer};
pub use layers::*;
pub use metrics::ConfusionMatrix;
pub use mode::Mode;
pub use module::{Module, SummaryStyle};
pub use optim::{
    Adam, Constant, Cosine, LrSchedule, MultiStep, OneCycle, Optimizer, OptimizerState, Sgd, StepDecay,
    Warmup,
};
pub use summary::{Summary, SummaryRow, format_dims, thousands};
