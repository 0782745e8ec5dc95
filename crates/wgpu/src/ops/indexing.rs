//! Picking positions along an axis by i32 indices on the GPU, and the adjoint as a
//! gather over the indices (no atomics, deterministic).

use kiln_tensor::{AxisIndexing, StorageRef};

use crate::backend::{WIDTH, WgpuBackend};
use crate::bindings::IndexAxisBindings;
use crate::gpu::grid;
use crate::kernels::Kernel;
use crate::params::AxisIndexParams;

impl WgpuBackend {
    /// Records [`kiln_tensor::Backend::gather_axis`].
    pub(crate) fn record_gather_axis(
        &self,
        x: &StorageRef,
        indices: &StorageRef,
        g: AxisIndexing,
    ) -> StorageRef {
        let n = g.split.outer * g.count * g.split.inner;
        let out = self.f32s(n, "gather_axis");
        let bindings = IndexAxisBindings { in0: Some(x), ints: Some(indices), out: Some(&out) }.slots();
        self.gpu.dispatch(
            Kernel::GatherAxis,
            "gather_axis",
            &AxisIndexParams::new(g),
            &bindings,
            grid(n, WIDTH),
        );
        out
    }

    /// Records [`kiln_tensor::Backend::scatter_add_axis`].
    pub(crate) fn record_scatter_add_axis(
        &self,
        src: &StorageRef,
        indices: &StorageRef,
        g: AxisIndexing,
    ) -> StorageRef {
        let n = g.split.outer * g.split.len * g.split.inner;
        let out = self.f32s(n, "scatter_add_axis");
        let bindings = IndexAxisBindings { in0: Some(src), ints: Some(indices), out: Some(&out) }.slots();
        self.gpu.dispatch(
            Kernel::ScatterAddAxis,
            "scatter_add_axis",
            &AxisIndexParams::new(g),
            &bindings,
            grid(n, WIDTH),
        );
        out
    }
}
