//! Matrix products on the GPU: the tiled GEMM (and its narrow variant for few rows), with
//! bias and ReLU fused into the store for dense layers.

use kiln_tensor::{Activation, MatmulDims, StorageRef};

use crate::backend::WgpuBackend;
use crate::kernels::Kernel;
use crate::params::MatmulParams;

/// Workgroups for a tiled GEMM producing `m × n` with tiles of `tile_rows × 64`:
/// column tiles along x (spilling into z), row tiles along y.
pub(crate) fn gemm_grid(m: usize, n: usize, tile_rows: usize) -> [u32; 3] {
    let column_tiles = n.div_ceil(64).max(1);
    let x = column_tiles.min(32_768);
    [x as u32, m.div_ceil(tile_rows).max(1) as u32, column_tiles.div_ceil(x) as u32]
}

/// Products with at most this many rows use 16-row tiles instead of 64-row ones.
const NARROW_ROWS: usize = 32;

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
        let (kernel, tile_rows) =
            if d.m <= NARROW_ROWS { (Kernel::MatmulNarrow, 16) } else { (Kernel::Matmul, 64) };
        let bindings = [Some(a), Some(b), bias, Some(&out)];
        self.gpu.dispatch(kernel, op, &params, &bindings, gemm_grid(d.m, d.n, tile_rows));
        out
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
