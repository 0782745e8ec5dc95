//! # kiln-tensor
//!
//! Kiln's core: [`Tensor`] (f32 values, or i32 labels and indices) on a runtime-chosen
//! [`Device`], the [`Backend`] trait every device implements, and the tape autograd.
//!
//! Parameters are leaves made with [`Tensor::with_requires_grad`]; every op on them is
//! recorded; [`Tensor::backward`] on the loss returns [`Gradients`] for the leaves; and
//! [`no_grad`] runs evaluation or updates without recording. Nothing recorded survives
//! the tensors of a step.
//!
//! This crate knows no backend: `kiln-cpu` and `kiln-wgpu` provide devices.

mod autograd;
mod backend;
mod device;
mod dtype;
mod error;
pub mod fast_math;
mod ops;
mod rng;
mod shape;
mod tensor;
mod unary_ops;

pub use autograd::{
    Gradients, is_recording, live_tape_entries, no_grad, tape_entries_recorded_on_this_thread,
};
pub use backend::{
    Activation, AdamStep, AttentionDims, AxisIndexing, Backend, BinaryOp, ChannelStatistics, Conv2dGeometry,
    EpilogueDropout, MatmulBatch, MatmulDims, PackedAttentionDims, Pool2dGeometry, RowAffine, SgdStep,
    SgdTarget, Storage, StorageRef, StridedView,
};
pub use device::Device;
pub use dtype::DType;
pub use error::{KilnError, Result};
pub use ops::{BatchNormOutput, BatchStatistics, ConvOptions, Size2d, Variance};
pub use rng::{DropoutMask, Rng, dropout_hash, dropout_keeps};
pub use shape::{AxisSplit, Shape};
pub use tensor::{Normal, Tensor, TensorId};
pub use unary_ops::{
    GradientRule, GradientSource, UNARY_DEFINITIONS, UnaryDefinition, UnaryDomain, UnaryGradientKernel,
    UnaryKernel, UnaryOp, ValueRule, erf, wgsl_prelude,
};
