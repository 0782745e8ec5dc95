//! `Sgd`: stochastic gradient descent with momentum, Nesterov and weight decay.

use std::collections::BTreeMap;

use kiln_tensor::{Gradients, SgdStep, Tensor};

use super::{Optimizer, OptimizerState};
use crate::{Module, Result};

/// SGD as PyTorch defines it: `g += wd·p; v = μ·v + g; p −= lr·(nesterov ? g + μ·v : v)`.
///
/// ```
/// use kiln_nn::Sgd;
/// let sgd = Sgd::new(0.01).with_momentum(0.9).with_nesterov(true).with_weight_decay(5e-4);
/// ```
#[derive(Clone, Debug)]
pub struct Sgd {
    config: SgdStep,
    velocity: BTreeMap<String, Tensor>,
}

impl Sgd {
    /// Plain SGD with learning rate `lr`.
    pub fn new(lr: f32) -> Self {
        Sgd {
            config: SgdStep { lr, momentum: 0.0, weight_decay: 0.0, nesterov: false },
            velocity: BTreeMap::new(),
        }
    }

    /// Momentum factor (0 for none).
    pub fn with_momentum(mut self, momentum: f32) -> Self {
        self.config.momentum = momentum;
        self
    }

    /// Nesterov momentum.
    pub fn with_nesterov(mut self, nesterov: bool) -> Self {
        self.config.nesterov = nesterov;
        self
    }

    /// L2 weight decay.
    pub fn with_weight_decay(mut self, weight_decay: f32) -> Self {
        self.config.weight_decay = weight_decay;
        self
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, model: &dyn Module, grads: &Gradients) {
        let config = self.config;
        let velocity = &mut self.velocity;
        model.visit_parameters("", &mut |name, param| {
            let Some(grad) = grads.get(param) else { return };
            let v = (config.momentum != 0.0).then(|| {
                velocity
                    .entry(name.to_string())
                    .or_insert_with(|| Tensor::zeros(param.shape().clone(), param.device()))
                    .storage()
                    .clone()
            });
            param.device().backend().sgd_update(param.storage(), grad.storage(), v.as_ref(), config);
        });
    }

    fn learning_rate(&self) -> f32 {
        self.config.lr
    }

    fn set_learning_rate(&mut self, lr: f32) {
        self.config.lr = lr;
    }

    fn kind(&self) -> &'static str {
        "sgd"
    }

    fn state(&self) -> OptimizerState {
        OptimizerState {
            tensors: self
                .velocity
                .iter()
                .map(|(name, v)| (format!("{name}.momentum_buffer"), v.clone()))
                .collect(),
            scalars: BTreeMap::new(),
        }
    }

    fn load_state(&mut self, state: OptimizerState) -> Result<()> {
        self.velocity = state
            .tensors
            .into_iter()
            .filter_map(|(name, t)| name.strip_suffix(".momentum_buffer").map(|p| (p.to_string(), t)))
            .collect();
        Ok(())
    }
}
