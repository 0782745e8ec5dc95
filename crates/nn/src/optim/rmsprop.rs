//! `RMSprop`: gradients divided by a running root mean square, as PyTorch defines it.

use std::collections::BTreeMap;

use kiln_tensor::{Gradients, Tensor, no_grad};

use super::{DecayScope, Optimizer, OptimizerState};
use crate::{Module, Result};

/// RMSprop (PyTorch's `torch.optim.RMSprop` without momentum or centering):
/// `g += wd·p; v = αv + (1−α)g²; p −= lr·g/(√v + ε)`. Runs as tensor ops on the
/// parameters' device.
///
/// ```
/// use kiln_nn::{DecayScope, RmsProp};
/// let rmsprop = RmsProp::new(1e-3).with_alpha(0.9).with_weight_decay(1e-4, DecayScope::MatricesOnly);
/// ```
#[derive(Clone, Debug)]
pub struct RmsProp {
    lr: f32,
    alpha: f32,
    eps: f32,
    weight_decay: f32,
    decay_scope: DecayScope,
    square_avg: BTreeMap<String, Tensor>,
}

impl RmsProp {
    /// RMSprop with learning rate `lr`, α 0.99, ε 1e-8 (PyTorch's defaults).
    pub fn new(lr: f32) -> Self {
        RmsProp {
            lr,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            decay_scope: DecayScope::All,
            square_avg: BTreeMap::new(),
        }
    }

    /// The running average's decay rate α.
    pub fn with_alpha(mut self, alpha: f32) -> Self {
        assert!((0.0..1.0).contains(&alpha), "RmsProp: alpha {alpha} is outside [0, 1)");
        self.alpha = alpha;
        self
    }

    /// The denominator's ε.
    pub fn with_eps(mut self, eps: f32) -> Self {
        self.eps = eps;
        self
    }

    /// L2 weight decay on the parameters `scope` selects.
    pub fn with_weight_decay(mut self, weight_decay: f32, scope: DecayScope) -> Self {
        self.weight_decay = weight_decay;
        self.decay_scope = scope;
        self
    }
}

impl Optimizer for RmsProp {
    fn step(&mut self, model: &dyn Module, grads: &Gradients) {
        let RmsProp { lr, alpha, eps, weight_decay, decay_scope, .. } = *self;
        let square_avg = &mut self.square_avg;
        no_grad(|| {
            model.visit_parameters("", &mut |name, param| {
                let Some(grad) = grads.get(param) else { return };
                let grad = if weight_decay != 0.0 && decay_scope.applies_to(param) {
                    grad.add(&param.mul_scalar(weight_decay))
                } else {
                    grad.clone()
                };
                let avg = square_avg
                    .entry(name.to_string())
                    .or_insert_with(|| Tensor::zeros(param.shape().clone(), param.device()));
                *avg = avg.mul_scalar(alpha).add(&grad.mul(&grad).mul_scalar(1.0 - alpha));
                let updated = param.sub(&grad.div(&avg.sqrt().add_scalar(eps)).mul_scalar(lr));
                param.device().backend().copy_into(param.storage(), updated.storage());
            });
        });
    }

    fn learning_rate(&self) -> f32 {
        self.lr
    }

    fn set_learning_rate(&mut self, lr: f32) {
        self.lr = lr;
    }

    fn kind(&self) -> &'static str {
        "rmsprop"
    }

    fn state(&self) -> OptimizerState {
        OptimizerState {
            tensors: self
                .square_avg
                .iter()
                .map(|(name, v)| (format!("{name}.square_avg"), v.clone()))
                .collect(),
            scalars: BTreeMap::new(),
        }
    }

    fn load_state(&mut self, state: OptimizerState) -> Result<()> {
        self.square_avg = state
            .tensors
            .into_iter()
            .filter_map(|(name, t)| name.strip_suffix(".square_avg").map(|p| (p.to_string(), t)))
            .collect();
        Ok(())
    }
}
