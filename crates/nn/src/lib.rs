//! # kiln-nn
//!
//! Layers, models, losses, metrics, initializers, optimizers and checkpoints for Kiln.
//! Everything works on any [`kiln_tensor::Device`]: the crate depends on `kiln-tensor`
//! only.
//!
//! - [`Module`]: `forward(x, mode)`, named parameters (PyTorch's names), output shapes
//!   without running, and a Keras-style [`Summary`].
//! - Layers: [`Conv2d`], [`MaxPool2d`], [`AvgPool2d`], [`AdaptiveAvgPool2d`],
//!   [`Dense`], [`Dropout`], [`Flatten`], [`BatchNorm1d`]/[`BatchNorm2d`],
//!   [`LayerNorm`], [`GroupNorm`], [`Embedding`], [`MultiheadAttention`],
//!   [`Sequential`]; activations [`ReLU`], [`Sigmoid`], [`Tanh`], [`GELU`], [`SiLU`],
//!   [`LeakyReLU`], [`Softplus`], [`ELU`], [`Identity`]; the notebook's AlexNet in
//!   [`models`]. A model whose forward is any graph is a type of your own that
//!   implements [`Module`] (see its docs).
//! - [`Initializer`] with [`Init`] schemes (Glorot, He, zeros), seeded.
//! - [`Optimizer`]s [`Sgd`], [`Adam`] (and AdamW) and [`RmsProp`], weight decay limited
//!   by a [`DecayScope`], [`clip_grad_norm`]; per-step [`LrSchedule`]s: constant,
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
    Adam, Constant, Cosine, DecayScope, LrSchedule, MultiStep, OneCycle, Optimizer, OptimizerState, RmsProp,
    Sgd, StepDecay, Warmup, clip_grad_norm,
};
pub use summary::{Summary, SummaryRow, format_dims, thousands};
