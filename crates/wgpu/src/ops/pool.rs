//! Max-pooling on the GPU: forward with argmax, backward as a gather.

use kiln_tensor::{DType, Pool2dGeometry, StorageRef};

use crate::backend::{WIDTH, WgpuBackend};
use crate::bindings::PoolBindings;
use crate::gpu::grid;
use crate::kernels::Kernel;
use crate::params::PoolParams;

impl WgpuBackend {
    /// Records [`kiln_tensor::Backend::max_pool2d`].
    pub(crate) fn record_max_pool2d(&self, x: &StorageRef, g: &Pool2dGeometry) -> (StorageRef, StorageRef) {
        let n = g.batch * g.channels * g.out_h() * g.out_w();
        let values = self.f32s(n, "max_pool2d");
        let argmax = self.gpu.alloc(n, DType::I32, "max_pool2d");
        let bindings =
            PoolBindings { in0: Some(x), out: Some(&values), out_ints: Some(&argmax), ..Default::default() }
                .slots();
        self.gpu.dispatch(Kernel::PoolForward, "max_pool2d", &PoolParams::new(g), &bindings, grid(n, WIDTH));
        (values, argmax)
    }

    /// Records [`kiln_tensor::Backend::max_pool2d_backward`].
    pub(crate) fn record_max_pool2d_backward(
        &self,
        grad: &StorageRef,
        argmax: &StorageRef,
        g: &Pool2dGeometry,
    ) -> StorageRef {
        let n = g.batch * g.channels * g.in_h * g.in_w;
        let out = self.f32s(n, "max_pool2d backward");
        let bindings =
            PoolBindings { in0: Some(grad), ints: Some(argmax), out: Some(&out), ..Default::default() }
                .slots();
        self.gpu.dispatch(
            Kernel::PoolBackward,
            "max_pool2d backward",
            &PoolParams::new(g),
            &bindings,
            grid(n, WIDTH),
        );
        out
    }
}
