//! Fused optimizer updates on the GPU: SGD (one or two tensors per dispatch) and Adam.

use kiln_tensor::{AdamStep, SgdStep, SgdTarget, StorageRef};

use crate::backend::{WIDTH, WgpuBackend};
use crate::gpu::grid;
use crate::kernels::Kernel;
use crate::params::{OptimParams, SgdPairParams};

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
        let bindings = [Some(grad), Some(param), velocity, None];
        self.gpu.dispatch(Kernel::Sgd, "sgd", &params, &bindings, grid(n, WIDTH));
    }

    /// Records [`kiln_tensor::Backend::sgd_update_all`].
    pub(crate) fn record_sgd_update_all(&self, targets: &[SgdTarget<'_>], s: SgdStep) {
        for pair in targets.chunks(2) {
            let [first, second] = pair else {
                let t = &pair[0];
                self.record_sgd_update(t.param, t.grad, t.velocity, s);
                continue;
            };
            debug_assert_eq!(first.velocity.is_some(), second.velocity.is_some(), "one SGD step, one config");
            let (n0, n1) = (first.param.len(), second.param.len());
            let params = SgdPairParams {
                n0: n0 as u32,
                n1: n1 as u32,
                use_velocity: u32::from(first.velocity.is_some()),
                nesterov: u32::from(s.nesterov),
                lr: s.lr,
                momentum: s.momentum,
                weight_decay: s.weight_decay,
            };
            let bindings = [
                Some(first.grad),
                Some(first.param),
                first.velocity,
                Some(second.grad),
                Some(second.param),
                second.velocity,
            ];
            self.gpu.dispatch(Kernel::SgdPair, "sgd", &params, &bindings, grid(n0 + n1, WIDTH));
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
            &[Some(grad), Some(param), Some(m), Some(v)],
            grid(n, WIDTH),
        );
    }
}
