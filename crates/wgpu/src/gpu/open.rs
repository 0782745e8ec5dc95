//! Opening a device: choosing the adapter and building the `Gpu` around it.

use std::sync::{Arc, Mutex};

use kiln_tensor::Result;

use super::{ARENA_BYTES, AdapterSummary, Gpu, Recorder, WorkCounters, device_error};
use crate::autotune::{Autotune, Clock, TileLimits, Tuner};
use crate::buffer_pool::BufferPool;
use crate::kernels::KernelCache;
use crate::timestamps::TimestampQueries;

/// Picks the adapter: `KILN_WGPU_ADAPTER` (an index into the list, or part of a name)
/// when set; else, for process `rank` of a multi-process run, hardware adapter number
/// `rank` modulo their count; else the high-performance one.
fn choose_adapter(instance: &wgpu::Instance, rank: Option<usize>) -> Result<wgpu::Adapter> {
    let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    let names = || {
        adapters
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{i}: {} ({:?})", a.get_info().name, a.get_info().backend))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Ok(wanted) = std::env::var("KILN_WGPU_ADAPTER") {
        let found = match wanted.parse::<usize>() {
            Ok(index) => adapters.get(index),
            Err(_) => {
                adapters.iter().find(|a| a.get_info().name.to_lowercase().contains(&wanted.to_lowercase()))
            }
        };
        return found.cloned().ok_or_else(|| {
            device_error(format!("KILN_WGPU_ADAPTER={wanted} matches no adapter; available: [{}]", names()))
        });
    }
    let hardware: Vec<&wgpu::Adapter> =
        adapters.iter().filter(|a| a.get_info().device_type != wgpu::DeviceType::Cpu).collect();
    if let Some(rank) = rank
        && !hardware.is_empty()
    {
        return Ok(hardware[rank % hardware.len()].clone());
    }
    pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::HighPerformance,
        force_fallback_adapter: false,
        compatible_surface: None,
        apply_limit_buckets: false,
    }))
    .map_err(|err| {
        device_error(format!(
            "no GPU adapter found ({err}): install a Vulkan, Metal or DX12 driver (on Debian/Ubuntu, \
             `apt-get install mesa-vulkan-drivers` gives a software one), or use the CPU backend"
        ))
    })
}

impl Gpu {
    /// Opens the chosen adapter's device with the adapter's own limits (the defaults cap
    /// storage bindings at 128 MiB, too small for AlexNet at batch 128).
    /// `rank`: this process's rank in a multi-process run, which spreads the processes
    /// over the machine's GPUs (`None` in a single-process run). `autotune`: how GEMM
    /// tiles are picked (`None`: from `KILN_AUTOTUNE` and the adapter's kind).
    pub fn open(rank: Option<usize>, autotune: Option<Autotune>) -> Result<Gpu> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = choose_adapter(&instance, rank)?;
        let info = adapter.get_info();
        let limits = adapter.limits();
        // A binding's size must be a multiple of 4 (NVIDIA reports 2³² − 1 bytes).
        let max_binding = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size) / 4 * 4;
        let features = adapter.features() & wgpu::Features::TIMESTAMP_QUERY;
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("kiln"),
            required_features: features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|err| device_error(format!("cannot open {}: {err}", info.name)))?;
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |err: wgpu::Error| {
            sink.lock().expect("error lock").push(err.to_string());
        }));
        let sink = errors.clone();
        device.set_device_lost_callback(move |reason, message| {
            sink.lock().expect("error lock").push(format!("device lost ({reason:?}): {message}"));
        });
        let arena = || {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("kiln params"),
                size: ARENA_BYTES,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        };
        let storage_usage =
            wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
        // The most storage bindings a kernel has: an SGD group of the largest size.
        let dummies = (0..3 * crate::sgd_group::MAX_GROUP as usize)
            .map(|_| {
                device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("kiln unused binding"),
                    size: 16,
                    usage: wgpu::BufferUsages::STORAGE,
                    mapped_at_creation: false,
                })
            })
            .collect();
        let summary = AdapterSummary {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
            is_cpu: info.device_type == wgpu::DeviceType::Cpu,
            max_binding_bytes: max_binding,
        };
        let is_cpu = info.device_type == wgpu::DeviceType::Cpu;
        let timestamps = features
            .contains(wgpu::Features::TIMESTAMP_QUERY)
            .then(|| TimestampQueries::new(&device, &queue));
        let clock = if timestamps.is_some() { Clock::GpuTimestamps } else { Clock::WallClock };
        let tuner = Tuner::new(
            autotune.unwrap_or_else(|| Autotune::from_env(is_cpu)),
            format!(
                "{} | {} {} | kiln {}",
                info.name,
                info.driver,
                info.driver_info,
                env!("CARGO_PKG_VERSION")
            ),
            TileLimits {
                workgroup_bytes: limits.max_compute_workgroup_storage_size,
                binding_bytes: max_binding,
            },
            clock,
        );
        Ok(Gpu {
            tuner,
            buffers: Arc::new(BufferPool::new(&device, storage_usage, max_binding)),
            staging: BufferPool::new(
                &device,
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                limits.max_buffer_size / 4 * 4,
            ),
            recorder: Mutex::new(Recorder {
                encoder: None,
                params: Vec::new(),
                arenas: [arena(), arena()],
                current: 0,
                counters: WorkCounters::default(),
                window: None,
            }),
            max_binding,
            kernels: KernelCache::default(),
            dummies,
            errors,
            timestamps,
            sgd_group_size: crate::sgd_group::group_size(limits.max_storage_buffers_per_shader_stage),
            summary,
            device,
            queue,
        })
    }
}
