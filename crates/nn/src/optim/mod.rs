//! Optimizers (SGD, Adam/AdamW, RMSprop) that update a model's parameters in place on
//! their device from the `Gradients` of a step, weight decay's scope, gradient clipping
//! and learning-rate schedules.

mod adam;
mod clip;
mod decay;
mod rmsprop;
mod schedule;
mod sgd;

use std::collections::BTreeMap;

pub use adam::Adam;
pub use clip::clip_grad_norm;
pub use decay::DecayScope;
pub use rmsprop::RmsProp;
pub use schedule::{Constant, Cosine, LrSchedule, MultiStep, OneCycle, StepDecay, Warmup};
pub use sgd::Sgd;

use kiln_tensor::{Gradients, Tensor};

use crate::{Module, Result};

/// What an optimizer must remember between steps, as saved in a checkpoint: buffers
/// named `{parameter}.{buffer}` (PyTorch's buffer names: `momentum_buffer`, `exp_avg`,
/// `exp_avg_sq`) and scalars such as the step count.
#[derive(Clone, Debug, Default)]
pub struct OptimizerState {
    /// Buffers by `{parameter}.{buffer}` name.
    pub tensors: BTreeMap<String, Tensor>,
    /// Scalars by name, as text.
    pub scalars: BTreeMap<String, String>,
}

/// Updates parameters from gradients.
///
/// ```
/// use kiln_cpu::CpuDevice;
/// use kiln_nn::{Dense, Initializer, Mode, Module, Optimizer, Sgd};
/// use kiln_tensor::{Device, Tensor};
///
/// let device = Device::cpu();
/// let model = Dense::new(&mut Initializer::new(&device, 0), 3, 2);
/// let mut sgd = Sgd::new(0.1).with_momentum(0.9);
/// let labels = Tensor::from_i32([4], vec![0, 1, 1, 0], &device);
/// let x = Tensor::randn([4, 3], 1, &device);
/// let before = model.forward(&x, Mode::Eval).cross_entropy(&labels).item().unwrap();
/// for _ in 0..20 {
///     let grads = model.forward(&x, Mode::train(0)).cross_entropy(&labels).backward();
///     sgd.step(&model, &grads);
/// }
/// let after = model.forward(&x, Mode::Eval).cross_entropy(&labels).item().unwrap();
/// assert!(after < before);
/// ```
pub trait Optimizer: Send {
    /// Applies one update to every parameter of `model` that has a gradient.
    fn step(&mut self, model: &dyn Module, grads: &Gradients);

    /// The current learning rate.
    fn learning_rate(&self) -> f32;

    /// Sets the learning rate (a schedule sets it before each step).
    fn set_learning_rate(&mut self, lr: f32);

    /// `sgd` or `adam`: checkpoints refuse to load one kind's state into the other.
    fn kind(&self) -> &'static str;

    /// The state to checkpoint.
    fn state(&self) -> OptimizerState;

    /// Restores state saved by [`Optimizer::state`].
    fn load_state(&mut self, state: OptimizerState) -> Result<()>;
}
