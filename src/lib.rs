//! # kiln
//!
//! The facade of Kiln, a pure-Rust deep-learning framework: one dependency that
//! re-exports the crates. `kiln::tensor` is `kiln-tensor` (tensors, autograd, the
//! backend trait), `kiln::cpu` is `kiln-cpu` (the CPU backend), `kiln::nn` is
//! `kiln-nn` (layers, optimizers, checkpoints), `kiln::data` is `kiln-data`
//! (datasets, Fashion-MNIST, batches; cargo feature `data`, on by default),
//! `kiln::train` is `kiln-train` (the trainer; cargo feature `train`, on by default)
//! and `kiln::wgpu` is
//! `kiln-wgpu` (the GPU backend; cargo feature `wgpu`, off by default because it
//! brings in the wgpu stack). The [`prelude`] brings in what a training loop needs.
//!
//! ```
//! use kiln::prelude::*;
//!
//! let device = Device::cpu();
//! let w = Tensor::randn([3, 2], 7, &device).with_requires_grad();
//! let x = Tensor::ones([4, 3], &device);
//! let loss = x.matmul(&w).relu().mean();
//! let grads = loss.backward();
//! assert_eq!(grads.get(&w).unwrap().dims(), &[3, 2]);
//! ```

pub use kiln_cpu as cpu;
#[cfg(feature = "data")]
pub use kiln_data as data;
pub use kiln_nn as nn;
pub use kiln_tensor as tensor;
#[cfg(feature = "train")]
pub use kiln_train as train;
#[cfg(feature = "wgpu")]
pub use kiln_wgpu as wgpu;

/// The types and traits of a typical training loop.
pub mod prelude {
    pub use kiln_cpu::CpuDevice;
    pub use kiln_nn::{
        Adam, Conv2d, Dense, Dropout, Flatten, Initializer, MaxPool2d, Mode, Module, Optimizer, ReLU,
        Sequential, Sgd,
    };
    pub use kiln_tensor::{DType, Device, Gradients, Normal, Shape, Tensor, no_grad};
    #[cfg(feature = "wgpu")]
    pub use kiln_wgpu::WgpuDevice;
}
