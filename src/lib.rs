//! # kiln
//!
//! The facade of Kiln, a pure-Rust deep-learning framework: one dependency that
//! re-exports the crates. `kiln::tensor` is `kiln-tensor` (tensors, autograd, the
//! backend trait), `kiln::cpu` is `kiln-cpu` (the CPU backend) and `kiln::nn` is
//! `kiln-nn` (layers, optimizers, checkpoints). The [`prelude`]
//! brings in what a training loop needs.
//!
//! ```
//! use kiln::prelude::*;
//!
//! let device = Device::cpu();
//! let w = Tensor::randn([3, 2], 0.0, 1.0, 7, &device).with_requires_grad();
//! let x = Tensor::ones([4, 3], &device);
//! let loss = x.matmul(&w).relu().mean();
//! let grads = loss.backward();
//! assert_eq!(grads.get(&w).unwrap().dims(), &[3, 2]);
//! ```

pub use kiln_cpu as cpu;
pub use kiln_nn as nn;
pub use kiln_tensor as tensor;

/// The types and traits of a typical training loop.
pub mod prelude {
    pub use kiln_cpu::CpuDevice;
    pub use kiln_nn::{
        Adam, Conv2d, Dense, Dropout, Flatten, Initializer, MaxPool2d, Mode, Module, Optimizer, ReLU,
        Sequential, Sgd,
    };
    pub use kiln_tensor::{DType, Device, Gradients, Shape, Tensor, no_grad};
}
