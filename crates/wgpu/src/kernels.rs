//! The WGSL kernels: where each one's source comes from (the top-level `shaders/`
//! folder), its entry point and its storage bindings; pipelines are compiled on first
//! use and cached. Every module is assembled one way: the binding declarations
//! generated from the family's binding set (`bindings.rs`), then the family's pieces
//! (shader files and generated WGSL) in order.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Mutex;

use crate::bindings::{
    Access, Binding, ConvForwardBindings, ConvInputGradBindings, ConvWeightGradBindings, DropoutBindings,
    ElementwiseBindings, FmaPeakBindings, IndexAxisBindings, MatmulBindings, NormBindings, OptimBindings,
    PoolBindings, ReduceBindings, wgsl_header,
};
use crate::gemm_tiles::{GemmPass, GemmTile};

/// Every compute kernel Kiln dispatches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    Fill,
    Unary,
    UnaryBackward,
    Binary,
    /// A strided window copied out to a contiguous buffer.
    GatherView,
    /// A contiguous buffer copied into a strided window.
    ScatterView,
    Dropout,
    /// Positions of an axis picked by i32 indices.
    GatherAxis,
    /// The adjoint of `GatherAxis`.
    ScatterAddAxis,
    SumAxis,
    ChannelSum,
    MaxAxis,
    MaxAxisBackward,
    Softmax,
    SoftmaxBackward,
    Normalize,
    NormalizeBackward,
    ChannelNorm,
    ChannelNormBackward,
    RowNorm,
    RowNormBackward,
    RowNormParamGrads,
    CrossEntropyRows,
    Mean,
    CrossEntropyBackward,
    PoolForward,
    PoolBackward,
    Sgd,
    /// SGD on this many tensors in one dispatch (`sgd_group.rs`).
    SgdGroup(u32),
    Adam,
    /// A pass on the tiled GEMM, compiled for a tile shape.
    Gemm(GemmPass, GemmTile),
    /// Split-K's second pass: the slices' sum, stored as the pass stores C.
    GemmSplitSum(GemmPass, GemmTile),
    /// The fp32 FMA ceiling probe (kiln-bench's `--fma-peak`).
    FmaPeak,
}

const INDEX: &str = include_str!("../shaders/index.wgsl");
const ELEMENTWISE: &str = include_str!("../shaders/elementwise.wgsl");
const DROPOUT: &str = include_str!("../shaders/dropout.wgsl");
const DROPOUT_MASK: &str = include_str!("../shaders/dropout_mask.wgsl");
const REDUCE: &str = include_str!("../shaders/reduce.wgsl");
const POOL: &str = include_str!("../shaders/pool.wgsl");
const CHANNEL_NORM: &str = include_str!("../shaders/channel_norm.wgsl");
const ROW_NORM: &str = include_str!("../shaders/row_norm.wgsl");
const WORKGROUP_SUMS: &str = include_str!("../shaders/workgroup_sums.wgsl");
const INDEX_AXIS: &str = include_str!("../shaders/index_axis.wgsl");
const OPTIM: &str = include_str!("../shaders/optim.wgsl");
const SGD_RULE: &str = include_str!("../shaders/sgd_rule.wgsl");
const GEMM_TILE: &str = include_str!("../shaders/gemm_tile.wgsl");
const MATMUL: &str = include_str!("../shaders/matmul.wgsl");
const CONV_COMMON: &str = include_str!("../shaders/conv_common.wgsl");
const CONV_FORWARD: &str = include_str!("../shaders/conv2d_forward.wgsl");
const CONV_INPUT_GRAD: &str = include_str!("../shaders/conv2d_input_grad.wgsl");
const FMA_PEAK: &str = include_str!("../shaders/fma_peak.wgsl");
const CONV_WEIGHT_GRAD: &str = include_str!("../shaders/conv2d_weight_grad.wgsl");
const SGD_GROUP: &str = include_str!("../shaders/sgd_group.wgsl");

/// One piece of a kernel's WGSL module.
#[derive(Clone, Copy)]
enum Piece {
    /// A shader file.
    File(&'static str),
    /// The elementwise ops' generated WGSL (`op_codes.rs`): op codes and unary functions.
    OpCodes,
    /// The tiled GEMM compiled for the kernel's tile shape.
    TiledGemm,
    /// The SGD group kernel generated for the kernel's group size.
    SgdGroup,
}

/// A kernel family: the pieces of its WGSL module, in order, and its storage bindings
/// 1, 2, … (binding 0 is the parameter block, `params.rs`).
struct Family {
    pieces: &'static [Piece],
    bindings: Cow<'static, [Binding]>,
}

use Piece::{File, OpCodes, TiledGemm};

const fn family(pieces: &'static [Piece], bindings: &'static [Binding]) -> Family {
    Family { pieces, bindings: Cow::Borrowed(bindings) }
}

const ELEMENTWISE_FAMILY: Family =
    family(&[File(INDEX), OpCodes, File(ELEMENTWISE)], ElementwiseBindings::DECLARATION);
const DROPOUT_FAMILY: Family =
    family(&[File(INDEX), File(DROPOUT_MASK), File(DROPOUT)], DropoutBindings::DECLARATION);
const REDUCE_FAMILY: Family = family(&[File(INDEX), File(REDUCE)], ReduceBindings::DECLARATION);
const CHANNEL_NORM_FAMILY: Family =
    family(&[File(WORKGROUP_SUMS), File(CHANNEL_NORM)], NormBindings::DECLARATION);
const ROW_NORM_FAMILY: Family =
    family(&[File(INDEX), File(WORKGROUP_SUMS), File(ROW_NORM)], NormBindings::DECLARATION);
const POOL_FAMILY: Family = family(&[File(INDEX), File(POOL)], PoolBindings::DECLARATION);
const INDEX_AXIS_FAMILY: Family = family(&[File(INDEX), File(INDEX_AXIS)], IndexAxisBindings::DECLARATION);
const OPTIM_FAMILY: Family = family(&[File(INDEX), File(SGD_RULE), File(OPTIM)], OptimBindings::DECLARATION);
/// The SGD group of `tensors` tensors: three bindings each.
fn sgd_group_family(tensors: u32) -> Family {
    Family {
        pieces: &[File(INDEX), File(SGD_RULE), File(SGD_GROUP), Piece::SgdGroup],
        bindings: Cow::Owned(crate::sgd_group::bindings(tensors)),
    }
}
const MATMUL_FAMILY: Family =
    family(&[File(DROPOUT_MASK), File(MATMUL), TiledGemm], MatmulBindings::DECLARATION);
const CONV_FORWARD_FAMILY: Family =
    family(&[File(CONV_COMMON), File(CONV_FORWARD), TiledGemm], ConvForwardBindings::DECLARATION);
const CONV_INPUT_GRAD_FAMILY: Family =
    family(&[File(CONV_COMMON), File(CONV_INPUT_GRAD), TiledGemm], ConvInputGradBindings::DECLARATION);
const CONV_WEIGHT_GRAD_FAMILY: Family =
    family(&[File(CONV_COMMON), File(CONV_WEIGHT_GRAD), TiledGemm], ConvWeightGradBindings::DECLARATION);

const FMA_PEAK_FAMILY: Family = family(&[File(FMA_PEAK)], FmaPeakBindings::DECLARATION);

/// The family of a pass on the tiled GEMM.
fn gemm_family(pass: GemmPass) -> Family {
    match pass {
        GemmPass::Matmul => MATMUL_FAMILY,
        GemmPass::ConvForward => CONV_FORWARD_FAMILY,
        GemmPass::ConvInputGrad => CONV_INPUT_GRAD_FAMILY,
        GemmPass::ConvWeightGrad => CONV_WEIGHT_GRAD_FAMILY,
    }
}

impl Kernel {
    /// The kernel's family and entry point: the one table to extend when adding a
    /// kernel (with its parameter struct in `params.rs` and its WGSL function).
    fn spec(self) -> (Family, &'static str) {
        use Kernel::*;
        match self {
            Fill => (ELEMENTWISE_FAMILY, "fill"),
            Unary => (ELEMENTWISE_FAMILY, "unary"),
            UnaryBackward => (ELEMENTWISE_FAMILY, "unary_backward"),
            Binary => (ELEMENTWISE_FAMILY, "binary"),
            GatherView => (ELEMENTWISE_FAMILY, "gather_view"),
            ScatterView => (ELEMENTWISE_FAMILY, "scatter_view"),
            Dropout => (DROPOUT_FAMILY, "dropout"),
            SumAxis => (REDUCE_FAMILY, "sum_axis"),
            ChannelSum => (REDUCE_FAMILY, "channel_sum"),
            MaxAxis => (REDUCE_FAMILY, "max_axis"),
            MaxAxisBackward => (REDUCE_FAMILY, "max_axis_backward"),
            Softmax => (REDUCE_FAMILY, "softmax"),
            SoftmaxBackward => (REDUCE_FAMILY, "softmax_backward"),
            Normalize => (REDUCE_FAMILY, "normalize"),
            NormalizeBackward => (REDUCE_FAMILY, "normalize_backward"),
            ChannelNorm => (CHANNEL_NORM_FAMILY, "channel_norm"),
            ChannelNormBackward => (CHANNEL_NORM_FAMILY, "channel_norm_backward"),
            RowNorm => (ROW_NORM_FAMILY, "row_norm"),
            RowNormBackward => (ROW_NORM_FAMILY, "row_norm_backward"),
            RowNormParamGrads => (ROW_NORM_FAMILY, "row_norm_param_grads"),
            CrossEntropyRows => (REDUCE_FAMILY, "cross_entropy_rows"),
            Mean => (REDUCE_FAMILY, "mean"),
            CrossEntropyBackward => (REDUCE_FAMILY, "cross_entropy_backward"),
            PoolForward => (POOL_FAMILY, "max_pool_forward"),
            GatherAxis => (INDEX_AXIS_FAMILY, "gather_axis"),
            ScatterAddAxis => (INDEX_AXIS_FAMILY, "scatter_add_axis"),
            PoolBackward => (POOL_FAMILY, "max_pool_backward"),
            Sgd => (OPTIM_FAMILY, "sgd"),
            Adam => (OPTIM_FAMILY, "adam"),
            SgdGroup(tensors) => (sgd_group_family(tensors), "sgd_group"),
            Gemm(pass, _) => (gemm_family(pass), "tiled_gemm"),
            GemmSplitSum(pass, _) => (gemm_family(pass), "split_k_sum"),
            FmaPeak => (FMA_PEAK_FAMILY, "fma_peak"),
        }
    }

    /// The kernel's family in GPU timings ([`crate::timestamps::FamilyTime`]): a GEMM
    /// pass by its name, split-K's sum included.
    pub fn family(self) -> &'static str {
        use Kernel::*;
        match self {
            Fill | Unary | UnaryBackward | Binary | GatherView | ScatterView => "elementwise",
            Dropout => "dropout",
            SumAxis | ChannelSum | MaxAxis | MaxAxisBackward | Softmax | SoftmaxBackward | Normalize
            | NormalizeBackward | CrossEntropyRows | Mean | CrossEntropyBackward => "reduce",
            ChannelNorm | ChannelNormBackward => "batch_norm",
            RowNorm | RowNormBackward | RowNormParamGrads => "layer_norm",
            PoolForward | PoolBackward => "max_pool",
            GatherAxis | ScatterAddAxis => "index",
            Sgd | SgdGroup(_) | Adam => "optimizer",
            Gemm(pass, _) | GemmSplitSum(pass, _) => pass.name(),
            FmaPeak => "fma_peak",
        }
    }

    /// The tile shape of a GEMM kernel.
    fn tile(self) -> Option<GemmTile> {
        match self {
            Kernel::Gemm(_, tile) | Kernel::GemmSplitSum(_, tile) => Some(tile),
            _ => None,
        }
    }

    /// The WGSL module: the family's binding declarations, then its pieces.
    fn source(self) -> String {
        let (family, _) = self.spec();
        let text = |piece: &Piece| match *piece {
            File(text) => text.to_string(),
            OpCodes => crate::op_codes::wgsl_source(),
            TiledGemm => {
                let tile = self.tile().expect("only GEMM kernels include the tiled GEMM");
                format!("{}\n{GEMM_TILE}", tile.wgsl_constants())
            }
            Piece::SgdGroup => match self {
                Kernel::SgdGroup(tensors) => crate::sgd_group::source(tensors),
                _ => unreachable!("only the SGD group kernel includes its generated source"),
            },
        };
        std::iter::once(wgsl_header(&family.bindings))
            .chain(family.pieces.iter().map(text))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The entry point's name.
    pub fn entry(self) -> &'static str {
        self.spec().1
    }

    /// The storage bindings 1, 2, … (binding 0 is the parameter block).
    pub fn bindings(self) -> Cow<'static, [Binding]> {
        self.spec().0.bindings
    }
}

/// A compiled kernel.
pub struct Compiled {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

/// Compiled kernels by kernel.
#[derive(Default)]
pub struct KernelCache {
    compiled: Mutex<HashMap<Kernel, std::sync::Arc<Compiled>>>,
}

/// Size of the parameter block each dispatch binds at its own dynamic offset.
pub const PARAMS_SIZE: u64 = 256;

impl KernelCache {
    /// The pipeline of `kernel`, compiling it on first use.
    pub fn get(&self, device: &wgpu::Device, kernel: Kernel) -> std::sync::Arc<Compiled> {
        let mut compiled = self.compiled.lock().expect("kernel cache lock");
        compiled.entry(kernel).or_insert_with(|| std::sync::Arc::new(compile(device, kernel))).clone()
    }
}

fn compile(device: &wgpu::Device, kernel: Kernel) -> Compiled {
    let label = format!("kiln {kernel:?}");
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(&label),
        source: wgpu::ShaderSource::Wgsl(kernel.source().into()),
    });
    let mut entries = vec![wgpu::BindGroupLayoutEntry {
        binding: 0,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: true,
            min_binding_size: wgpu::BufferSize::new(PARAMS_SIZE),
        },
        count: None,
    }];
    for (i, binding) in kernel.bindings().iter().enumerate() {
        entries.push(wgpu::BindGroupLayoutEntry {
            binding: i as u32 + 1,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only: binding.access == Access::Read },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        });
    }
    let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some(&label),
        entries: &entries,
    });
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(&label),
        bind_group_layouts: &[Some(&layout)],
        immediate_size: 0,
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(&label),
        layout: Some(&pipeline_layout),
        module: &module,
        entry_point: Some(kernel.entry()),
        compilation_options: Default::default(),
        cache: None,
    });
    Compiled { pipeline, layout }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm_tiles::Lanes;

    #[test]
    fn each_tile_shape_compiles_its_own_constants() {
        let wide = Kernel::Gemm(GemmPass::Matmul, GemmTile::DEFAULT).source();
        let narrow = Kernel::Gemm(GemmPass::Matmul, GemmTile::NARROW).source();
        assert!(wide.contains("const ROWS: u32 = 4u;") && wide.contains("const COLS: u32 = 4u;"));
        assert_eq!(narrow, wide.replace("const ROWS: u32 = 4u;", "const ROWS: u32 = 1u;"));
        let big = Kernel::Gemm(
            GemmPass::ConvWeightGrad,
            GemmTile { lanes: Lanes::Square, rows: 8, cols: 8, splits: 16, buffers: 1 },
        )
        .source();
        assert!(big.contains("const ROWS: u32 = 8u;") && big.contains("const SPLITS: u32 = 16u;"));
        // `partial` is the family's last binding: weight gradients bind grad, input, dw.
        assert!(big.contains("@group(0) @binding(4) var<storage, read_write> partial: array<f32>;"));
    }

    #[test]
    fn every_elementwise_kernel_gets_the_op_codes() {
        for kernel in [Kernel::Fill, Kernel::Unary, Kernel::UnaryBackward, Kernel::Binary] {
            let source = kernel.source();
            assert!(
                source.contains("fn apply_unary(op: u32") && source.contains("const BINARY_ADD"),
                "{kernel:?}"
            );
        }
    }
}
