//! `Sgd`: stochastic gradient descent with momentum, Nesterov and weight decay.

use std::collections::BTreeMap;

use kiln_tensor::{Device, Gradients, SgdStep, SgdTarget, StorageRef, Tensor};

use super::{DecayScope, Optimizer, OptimizerState};
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
    decay_scope: DecayScope,
    velocity: BTreeMap<String, Tensor>,
}

impl Sgd {
    /// Plain SGD with learning rate `lr`.
    pub fn new(lr: f32) -> Self {
        Sgd {
            config: SgdStep { lr, momentum: 0.0, weight_decay: 0.0, nesterov: false },
            velocity: BTreeMap::new(),
            decay_scope: DecayScope::All,
        }
    }

    /// Restricts weight decay to the parameters `scope` selects.
    pub fn with_decay_scope(mut self, scope: DecayScope) -> Self {
        self.decay_scope = scope;
        self
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
    /// Updates every parameter that has a gradient, handing each device all of its
    /// tensors in one call (so a backend can update several per kernel).
    fn step(&mut self, model: &dyn Module, grads: &Gradients) {
        let (config, scope) = (self.config, self.decay_scope);
        let velocity = &mut self.velocity;
        // Per parameter: its device, whether it decays, its buffers.
        let mut updates: Vec<(Device, bool, [StorageRef; 2], Option<StorageRef>)> = Vec::new();
        model.visit_parameters("", &mut |name, param| {
            let Some(grad) = grads.get(param) else { return };
            let v = (config.momentum != 0.0).then(|| {
                velocity
                    .entry(name.to_string())
                    .or_insert_with(|| Tensor::zeros(param.shape().clone(), param.device()))
                    .storage()
                    .clone()
            });
            let decays = scope.applies_to(param);
            updates.push((
                param.device().clone(),
                decays,
                [param.storage().clone(), grad.storage().clone()],
                v,
            ));
        });
        // Decayed parameters first: each run of one device and one decay setting is one
        // call (a backend may update all of its tensors per kernel).
        updates.sort_by_key(|update| !update.1);
        for group in updates.chunk_by(|a, b| a.0 == b.0 && a.1 == b.1) {
            let targets: Vec<SgdTarget<'_>> = group
                .iter()
                .map(|(_, _, [param, grad], velocity)| SgdTarget { param, grad, velocity: velocity.as_ref() })
                .collect();
            let step = if group[0].1 { config } else { SgdStep { weight_decay: 0.0, ..config } };
            group[0].0.backend().sgd_update_all(&targets, step);
        }
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
