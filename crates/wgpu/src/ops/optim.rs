//! Fused optimizer updates on the GPU: SGD (one tensor, or a group of up to 8 per
//! dispatch) and Adam.

use kiln_tensor::{AdamStep, SgdStep, SgdTarget, StorageRef};

use crate::backend::{WIDTH, WgpuBackend};
use crate::bindings::OptimBindings;
use crate::gpu::grid;
use crate::kernels::Kernel;
use crate::params::{OptimParams, SgdGroupParams};

impl WgpuBackend {
    /// Records [`kiln_tensor::Backend::sgd_update`].
    pub(crate) fn record_sgd_update(
        &self,
        param: &StorageRef,
        grad: &StorageRef,
        velocity: Option<&StorageRef>,
        s: SgdStep,
    ) {
        let n = param.len();
        let params = OptimParams {
            n: n as u32,
            use_velocity: u32::from(velocity.is_some()),
            nesterov: u32::from(s.nesterov),
            lr: s.lr,
            momentum: s.momentum,
            weight_decay: s.weight_decay,
            ..Default::default()
        };
        let bindings =
            OptimBindings { grad: Some(grad), param: Some(param), state1: velocity, state2: None }.slots();
        self.gpu.dispatch(Kernel::Sgd, "sgd", &params, &bindings, grid(n, WIDTH));
    }

    /// Records [`kiln_tensor::Backend::sgd_update_all`]: one dispatch per group of as
    /// many tensors as the adapter's bindings allow (at most 8).
    pub(crate) fn record_sgd_update_all(&self, targets: &[SgdTarget<'_>], s: SgdStep) {
        let size = self.gpu.sgd_group_size;
        if size == 1 {
            for t in targets {
                self.record_sgd_update(t.param, t.grad, t.velocity, s);
            }
            return;
        }
        for group in targets.chunks(size as usize) {
            let with_velocity = group[0].velocity.is_some();
            debug_assert!(
                group.iter().all(|t| t.velocity.is_some() == with_velocity),
                "one SGD step, one config"
            );
            let mut params = SgdGroupParams {
                use_velocity: u32::from(with_velocity),
                nesterov: u32::from(s.nesterov),
                lr: s.lr,
                momentum: s.momentum,
                weight_decay: s.weight_decay,
                tensors: group.len() as u32,
                ..bytemuck::Zeroable::zeroed()
            };
            let mut end = 0;
            for ((slot, len), t) in params.ends.iter_mut().zip(&mut params.lens).zip(group) {
                end += t.param.len().div_ceil(WIDTH);
                *slot = end as u32;
                *len = t.param.len() as u32;
            }
            let bindings: Vec<Option<&StorageRef>> =
                group.iter().flat_map(|t| [Some(t.grad), Some(t.param), t.velocity]).collect();
            self.gpu.dispatch(Kernel::SgdGroup(size), "sgd", &params, &bindings, grid(end, 1));
        }
    }

    /// Records [`kiln_tensor::Backend::adam_update`].
    pub(crate) fn record_adam_update(
        &self,
        param: &StorageRef,
        grad: &StorageRef,
        m: &StorageRef,
        v: &StorageRef,
        s: AdamStep,
    ) {
        let n = param.len();
        let bias1 = 1.0 - s.beta1.powi(s.step as i32);
        let bias2 = 1.0 - s.beta2.powi(s.step as i32);
        let params = OptimParams {
            n: n as u32,
            decoupled: u32::from(s.decoupled),
            lr: s.lr,
            weight_decay: s.weight_decay,
            beta1: s.beta1,
            beta2: s.beta2,
            eps: s.eps,
            bias1,
            bias2,
            ..Default::default()
        };
        self.gpu.dispatch(
            Kernel::Adam,
            "adam",
            &params,
            &OptimBindings { grad: Some(grad), param: Some(param), state1: Some(m), state2: Some(v) }.slots(),
            grid(n, WIDTH),
        );
    }
}
