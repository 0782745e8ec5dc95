//! Matrix products on the GPU: the tiled GEMM (and its narrow variant for few rows), with
//! bias and ReLU fused into the store for dense layers.

use kiln_tensor::{Activation, MatmulDims, StorageRef};

use crate::autotune::GemmPass;
use crate::backend::WgpuBackend;
use crate::gemm_tiles::GemmTile;
use crate::kernels::Kernel;
use crate::params::MatmulParams;

/// A tiled-GEMM pass: which pass the tuner keeps choices for, its kernel for a tile
/// shape, and the shape used when nothing is tuned.
pub(crate) struct TiledPass {
    pub pass: GemmPass,
    pub kernel: fn(GemmTile) -> Kernel,
    pub fixed: GemmTile,
}

impl WgpuBackend {
    /// `op(A)·op(B)`, plus `bias[n]` on every row when given, through `activation`, in
    /// one dispatch.
    pub(crate) fn matmul_then(
        &self,
        a: &StorageRef,
        b: &StorageRef,
        bias: Option<&StorageRef>,
        d: MatmulDims,
        activation: Activation,
        op: &str,
    ) -> StorageRef {
        let out = self.f32s(d.m * d.n, op);
        let params = MatmulParams::new(d, bias.is_some(), activation);
        let bindings = [Some(a), Some(b), bias, Some(&out)];
        let pass =
            TiledPass { pass: GemmPass::Matmul, kernel: Kernel::Matmul, fixed: GemmTile::default_for(d.m) };
        self.record_tiled(pass, [d.m, d.n, d.k], op, &params, &bindings);
        out
    }

    /// Records a tiled-GEMM pass producing `m × n` with depth `k`, in the tile shape the
    /// tuner picks.
    pub(crate) fn record_tiled<P: bytemuck::Pod>(
        &self,
        pass: TiledPass,
        [m, n, k]: [usize; 3],
        op: &str,
        params: &P,
        bindings: &[Option<&StorageRef>],
    ) {
        let run =
            |tile: GemmTile| self.gpu.dispatch((pass.kernel)(tile), op, params, bindings, tile.grid(m, n));
        self.gpu.tuner.record(pass.pass, [m, n, k], pass.fixed, run, || self.gpu.wait_idle());
    }

    /// Records [`kiln_tensor::Backend::matmul`].
    pub(crate) fn record_matmul(&self, a: &StorageRef, b: &StorageRef, d: MatmulDims) -> StorageRef {
        self.matmul_then(a, b, None, d, Activation::Identity, "matmul")
    }

    /// Records [`kiln_tensor::Backend::linear`].
    pub(crate) fn record_linear(
        &self,
        x: &StorageRef,
        weight: &StorageRef,
        bias: Option<&StorageRef>,
        dims: MatmulDims,
        activation: Activation,
    ) -> StorageRef {
        self.matmul_then(x, weight, bias, dims, activation, "linear")
    }
}
