//! The WGSL kernels: where each one's source comes from (the top-level `shaders/`
//! folder), its entry point and its storage bindings; pipelines are compiled on first
//! use and cached.

use std::collections::HashMap;
use std::sync::Mutex;

/// How a kernel uses one storage binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `var<storage, read>`
    Read,
    /// `var<storage, read_write>`
    Write,
}

use Access::{Read, Write};

/// Every compute kernel Kiln dispatches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    Fill,
    Unary,
    UnaryBackward,
    Binary,
    Dropout,
    SumAxis,
    ChannelSum,
    MaxAxis,
    MaxAxisBackward,
    Softmax,
    SoftmaxBackward,
    CrossEntropyRows,
    Mean,
    CrossEntropyBackward,
    PoolForward,
    PoolBackward,
    Sgd,
    SgdPair,
    Adam,
    Matmul,
    MatmulNarrow,
    ConvForward,
    ConvInputGrad,
    ConvWeightGrad,
}

const INDEX: &str = include_str!("../../../shaders/index.wgsl");
const ELEMENTWISE: &str = include_str!("../../../shaders/elementwise.wgsl");
const DROPOUT: &str = include_str!("../../../shaders/dropout.wgsl");
const REDUCE: &str = include_str!("../../../shaders/reduce.wgsl");
const POOL: &str = include_str!("../../../shaders/pool.wgsl");
const OPTIM: &str = include_str!("../../../shaders/optim.wgsl");
const OPTIM_PAIR: &str = include_str!("../../../shaders/optim_pair.wgsl");
const SGD_RULE: &str = include_str!("../../../shaders/sgd_rule.wgsl");
const GEMM_TILE: &str = include_str!("../../../shaders/gemm_tile.wgsl");
const MATMUL: &str = include_str!("../../../shaders/matmul.wgsl");
const CONV_COMMON: &str = include_str!("../../../shaders/conv_common.wgsl");
const CONV_FORWARD: &str = include_str!("../../../shaders/conv2d_forward.wgsl");
const CONV_INPUT_GRAD: &str = include_str!("../../../shaders/conv2d_input_grad.wgsl");
const CONV_WEIGHT_GRAD: &str = include_str!("../../../shaders/conv2d_weight_grad.wgsl");

const ELEMENTWISE_SLOTS: &[Access] = &[Read, Read, Read, Write];
const REDUCE_SLOTS: &[Access] = &[Read, Read, Read, Write, Write, Write];
const POOL_SLOTS: &[Access] = &[Read, Read, Write, Write];
const OPTIM_SLOTS: &[Access] = &[Read, Write, Write, Write];

impl Kernel {
    /// The WGSL module: the family's file with the pieces it includes.
    fn source(self) -> String {
        use Kernel::*;
        match self {
            Fill | Unary | UnaryBackward | Binary => {
                format!("{INDEX}\n{}\n{ELEMENTWISE}", crate::op_codes::wgsl_constants())
            }
            Dropout => format!("{INDEX}\n{DROPOUT}"),
            SumAxis | ChannelSum | MaxAxis | MaxAxisBackward | Softmax | SoftmaxBackward
            | CrossEntropyRows | Mean | CrossEntropyBackward => format!("{INDEX}\n{REDUCE}"),
            PoolForward | PoolBackward => format!("{INDEX}\n{POOL}"),
            Sgd | Adam => format!("{INDEX}\n{SGD_RULE}\n{OPTIM}"),
            SgdPair => format!("{INDEX}\n{SGD_RULE}\n{OPTIM_PAIR}"),
            Matmul => format!("{MATMUL}\n{GEMM_TILE}"),
            MatmulNarrow => {
                format!("{MATMUL}\n{}", GEMM_TILE.replace("const ROWS: u32 = 4u;", "const ROWS: u32 = 1u;"))
            }
            ConvForward => format!("{CONV_COMMON}\n{CONV_FORWARD}\n{GEMM_TILE}"),
            ConvInputGrad => format!("{CONV_COMMON}\n{CONV_INPUT_GRAD}\n{GEMM_TILE}"),
            ConvWeightGrad => format!("{CONV_COMMON}\n{CONV_WEIGHT_GRAD}\n{GEMM_TILE}"),
        }
    }

    /// The entry point's name.
    pub fn entry(self) -> &'static str {
        use Kernel::*;
        match self {
            Fill => "fill",
            Unary => "unary",
            UnaryBackward => "unary_backward",
            Binary => "binary",
            Dropout => "dropout",
            SumAxis => "sum_axis",
            ChannelSum => "channel_sum",
            MaxAxis => "max_axis",
            MaxAxisBackward => "max_axis_backward",
            Softmax => "softmax",
            SoftmaxBackward => "softmax_backward",
            CrossEntropyRows => "cross_entropy_rows",
            Mean => "mean",
            CrossEntropyBackward => "cross_entropy_backward",
            PoolForward => "max_pool_forward",
            PoolBackward => "max_pool_backward",
            Sgd => "sgd",
            SgdPair => "sgd_pair",
            Adam => "adam",
            Matmul | MatmulNarrow | ConvForward | ConvInputGrad | ConvWeightGrad => "main",
        }
    }

    /// The storage bindings 1, 2, … (binding 0 is the parameter block).
    pub fn slots(self) -> &'static [Access] {
        use Kernel::*;
        match self {
            Fill | Unary | UnaryBackward | Binary => ELEMENTWISE_SLOTS,
            Dropout => &[Read, Write],
            SumAxis | ChannelSum | MaxAxis | MaxAxisBackward | Softmax | SoftmaxBackward
            | CrossEntropyRows | Mean | CrossEntropyBackward => REDUCE_SLOTS,
            PoolForward | PoolBackward => POOL_SLOTS,
            Sgd | Adam => OPTIM_SLOTS,
            SgdPair => &[Read, Write, Write, Read, Write, Write],
            ConvInputGrad | ConvWeightGrad => &[Read, Read, Write],
            Matmul | MatmulNarrow | ConvForward => &[Read, Read, Read, Write],
        }
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
    for (i, access) in kernel.slots().iter().enumerate() {
        entries.push(wgpu::BindGroupLayoutEntry {
            binding: i as u32 + 1,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only: *access == Read },
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
