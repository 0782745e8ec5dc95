//! Matrix products on the GPU: the tiled GEMM (and its narrow variant for few rows), with
//! bias and ReLU fused into the store for dense layers.

use kiln_tensor::{Activation, EpilogueDropout, MatmulBatch, MatmulDims, StorageRef};

use crate::backend::{WIDTH, WgpuBackend};
use crate::bindings::MatmulBindings;
use crate::gemm_tiles::{GemmPass, GemmTile};
use crate::gpu::grid;
use crate::kernels::Kernel;
use crate::params::MatmulParams;

/// Workgroups a dispatch may have along z (WebGPU's default
/// `maxComputeWorkgroupsPerDimension`).
const MAX_GRID_Z: usize = 65_535;

impl WgpuBackend {
    /// `op(A)·op(B)` of `d`, plus `bias[n]` on every row when given, with the store
    /// `params` describes (their activation and dropout), in one dispatch.
    fn matmul_then(
        &self,
        a: &StorageRef,
        b: &StorageRef,
        bias: Option<&StorageRef>,
        d: MatmulDims,
        params: MatmulParams,
        op: &str,
    ) -> StorageRef {
        let out = self.f32s(d.m * d.n, op);
        let bindings = MatmulBindings { a: Some(a), b: Some(b), bias, c: Some(&out), partial: None }.slots();
        let fixed = GemmTile::default_for(d.m);
        self.record_tiled(GemmPass::Matmul, fixed, [d.m, d.n, d.k], op, &params, &bindings);
        out
    }

    /// Records a tiled-GEMM pass producing `m × n` with depth `k`, in the tile shape the
    /// tuner picks (`fixed` when nothing is tuned); `bindings` are the pass's binding
    /// set's slots, whose last, the split-K buffer `partial`, is filled in here.
    pub(crate) fn record_tiled<P: bytemuck::Pod>(
        &self,
        pass: GemmPass,
        fixed: GemmTile,
        [m, n, k]: [usize; 3],
        op: &str,
        params: &P,
        bindings: &[Option<&StorageRef>],
    ) {
        let run = |tile: GemmTile| {
            let partial = (tile.splits > 1).then(|| self.f32s(tile.splits as usize * m * n, op));
            let mut all = bindings.to_vec();
            *all.last_mut().expect("a GEMM pass binds its split-K buffer last") = partial.as_ref();
            self.gpu.dispatch(Kernel::Gemm(pass, tile), op, params, &all, tile.grid(m, n));
            self.gpu.count_flops(pass.name(), 2.0 * (m * n * k) as f64);
            if partial.is_some() {
                self.gpu.dispatch(Kernel::GemmSplitSum(pass, tile), op, params, &all, grid(m * n, WIDTH));
            }
        };
        self.gpu.tuner.record(pass, [m, n, k], fixed, run, |work| self.gpu.time(work));
    }

    /// Records [`kiln_tensor::Backend::matmul`].
    pub(crate) fn record_matmul(&self, a: &StorageRef, b: &StorageRef, d: MatmulDims) -> StorageRef {
        let params = MatmulParams::new(d, false, Activation::Identity, None);
        self.matmul_then(a, b, None, d, params, "matmul")
    }

    /// Records [`kiln_tensor::Backend::batched_matmul`]: every product in one dispatch
    /// (products stacked along the grid's z, each reading its operands and writing its
    /// result at its offsets, no copies), split only where the products would exceed
    /// the grid's z limit.
    pub(crate) fn record_batched_matmul(
        &self,
        a: &StorageRef,
        b: &StorageRef,
        d: MatmulDims,
        batch: MatmulBatch,
    ) -> StorageRef {
        let out = self.f32s(batch.count * d.m * d.n, "batched matmul");
        let bindings =
            MatmulBindings { a: Some(a), b: Some(b), bias: None, c: Some(&out), partial: None }.slots();
        // One tile shape without split-K (its partial sums have no room for products).
        let tile = GemmTile::default_for(d.m);
        let [x, y, z] = tile.grid(d.m, d.n);
        let per_dispatch = (MAX_GRID_Z / z as usize).max(1);
        let mut first = 0;
        while first < batch.count {
            let products = per_dispatch.min(batch.count - first);
            let params = MatmulParams {
                a_offset: (first * batch.a_stride) as u32,
                b_offset: (first * batch.b_stride) as u32,
                c_offset: (first * d.m * d.n) as u32,
                products: products as u32,
                a_stride: batch.a_stride as u32,
                b_stride: batch.b_stride as u32,
                c_stride: (d.m * d.n) as u32,
                ..MatmulParams::new(d, false, Activation::Identity, None)
            };
            let grid = [x, y, z * products as u32];
            self.gpu.dispatch(
                Kernel::Gemm(GemmPass::Matmul, tile),
                "batched matmul",
                &params,
                &bindings,
                grid,
            );
            self.gpu.count_flops(GemmPass::Matmul.name(), 2.0 * (products * d.m * d.n * d.k) as f64);
            first += products;
        }
        out
    }

    /// Records [`kiln_tensor::Backend::linear`].
    pub(crate) fn record_linear(
        &self,
        x: &StorageRef,
        weight: &StorageRef,
        bias: Option<&StorageRef>,
        dims: MatmulDims,
        activation: Activation,
        dropout: Option<EpilogueDropout>,
    ) -> StorageRef {
        let params = MatmulParams::new(dims, bias.is_some(), activation, dropout);
        self.matmul_then(x, weight, bias, dims, params, "linear")
    }
}
