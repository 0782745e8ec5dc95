//! `Adam` and AdamW: adaptive moments with bias correction.

use std::collections::BTreeMap;

use kiln_tensor::{AdamStep, Gradients, Tensor};

use super::{DecayScope, Optimizer, OptimizerState};
use crate::{Module, NnError, Result};

/// Adam (L2 weight decay in the gradient) or AdamW (decoupled weight decay), as in
/// PyTorch: `m = β₁m + (1−β₁)g; v = β₂v + (1−β₂)g²; p −= lr·m̂/(√v̂ + ε)`.
///
/// ```
/// use kiln_nn::Adam;
/// let adam = Adam::new(1e-3);
/// let adamw = Adam::adamw(1e-3, 0.01);
/// ```
#[derive(Clone, Debug)]
pub struct Adam {
    config: AdamStep,
    decay_scope: DecayScope,
    moments: BTreeMap<String, (Tensor, Tensor)>,
}

impl Adam {
    /// Adam with learning rate `lr`, β = (0.9, 0.999), ε = 1e-8, no weight decay.
    pub fn new(lr: f32) -> Self {
        Adam {
            config: AdamStep {
                lr,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.0,
                decoupled: false,
                step: 0,
            },
            moments: BTreeMap::new(),
            decay_scope: DecayScope::All,
        }
    }

    /// Restricts weight decay to the parameters `scope` selects.
    pub fn with_decay_scope(mut self, scope: DecayScope) -> Self {
        self.decay_scope = scope;
        self
    }

    /// AdamW: decoupled weight decay `weight_decay`.
    pub fn adamw(lr: f32, weight_decay: f32) -> Self {
        let mut adam = Adam::new(lr);
        adam.config.weight_decay = weight_decay;
        adam.config.decoupled = true;
        adam
    }

    /// The moment decay rates.
    pub fn with_betas(mut self, beta1: f32, beta2: f32) -> Self {
        self.config.beta1 = beta1;
        self.config.beta2 = beta2;
        self
    }

    /// The denominator's ε.
    pub fn with_eps(mut self, eps: f32) -> Self {
        self.config.eps = eps;
        self
    }

    /// L2 weight decay (added to the gradient; use [`Adam::adamw`] for decoupled).
    pub fn with_weight_decay(mut self, weight_decay: f32) -> Self {
        self.config.weight_decay = weight_decay;
        self
    }
}

impl Optimizer for Adam {
    fn step(&mut self, model: &dyn Module, grads: &Gradients) {
        self.config.step += 1;
        let (config, scope) = (self.config, self.decay_scope);
        let moments = &mut self.moments;
        model.visit_parameters("", &mut |name, param| {
            let Some(grad) = grads.get(param) else { return };
            let (m, v) = moments.entry(name.to_string()).or_insert_with(|| {
                let zeros = || Tensor::zeros(param.shape().clone(), param.device());
                (zeros(), zeros())
            });
            param.device().backend().adam_update(
                param.storage(),
                grad.storage(),
                m.storage(),
                v.storage(),
                if scope.applies_to(param) { config } else { AdamStep { weight_decay: 0.0, ..config } },
            );
        });
    }

    fn learning_rate(&self) -> f32 {
        self.config.lr
    }

    fn set_learning_rate(&mut self, lr: f32) {
        self.config.lr = lr;
    }

    fn kind(&self) -> &'static str {
        "adam"
    }

    fn state(&self) -> OptimizerState {
        let mut tensors = BTreeMap::new();
        for (name, (m, v)) in &self.moments {
            tensors.insert(format!("{name}.exp_avg"), m.clone());
            tensors.insert(format!("{name}.exp_avg_sq"), v.clone());
        }
        OptimizerState {
            tensors,
            scalars: BTreeMap::from([("step".to_string(), self.config.step.to_string())]),
        }
    }

    fn load_state(&mut self, mut state: OptimizerState) -> Result<()> {
        let step = state.scalars.get("step").map(|s| s.parse::<u64>());
        let step = match step {
            Some(Ok(step)) => step,
            _ => return Err(NnError::OptimizerState("Adam state lacks a valid `step` count".into())),
        };
        let mut moments = BTreeMap::new();
        let names: Vec<String> =
            state.tensors.keys().filter_map(|k| k.strip_suffix(".exp_avg").map(str::to_string)).collect();
        for name in names {
            let m = state.tensors.remove(&format!("{name}.exp_avg"));
            let v = state.tensors.remove(&format!("{name}.exp_avg_sq"));
            match (m, v) {
                (Some(m), Some(v)) => moments.insert(name, (m, v)),
                _ => {
                    return Err(NnError::OptimizerState(format!("Adam state for `{name}` lacks exp_avg_sq")));
                }
            };
        }
        self.config.step = step;
        self.moments = moments;
        Ok(())
    }
}
