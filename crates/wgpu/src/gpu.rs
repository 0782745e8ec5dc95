//! `Gpu`: one wgpu device and queue with everything Kiln keeps around it — the buffer
//! pools, the kernel cache, the recorder that batches dispatches into one command
//! encoder until a sync point, and the errors wgpu reported.
//!
//! Ordering rules (see docs/wgpu.md): `queue.write_buffer` takes effect at the next
//! submit, before that submit's recorded commands. So every host upload first submits
//! whatever is recorded, and each encoder's parameter blocks live in their own arena
//! buffer written just before that encoder is submitted.

use std::sync::{Arc, Mutex};

use kiln_tensor::{DType, KilnError, Result, StorageRef};

use crate::autotune::{Autotune, Clock, TileLimits, Tuner};
use crate::buffer_pool::{BufferPool, GpuStorage};
use crate::kernels::{Kernel, KernelCache, PARAMS_SIZE};
use crate::timestamps::{KernelTimes, TimestampQueries, Window};

/// Dispatches an encoder collects before it is submitted.
const DISPATCHES_PER_SUBMIT: usize = 1024;
/// Bytes of one parameter arena.
const ARENA_BYTES: u64 = DISPATCHES_PER_SUBMIT as u64 * PARAMS_SIZE;

/// What the adapter is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterSummary {
    /// The adapter's name, e.g. `NVIDIA H200` or `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub name: String,
    /// `Vulkan`, `Metal` or `Dx12`.
    pub backend: String,
    /// `DiscreteGpu`, `IntegratedGpu`, `Cpu`, ….
    pub device_type: String,
    /// A software rasterizer (lavapipe, WARP): real WGSL, CPU speed.
    pub is_cpu: bool,
    /// The largest tensor one kernel can bind, in bytes: the adapter's largest storage
    /// binding and largest buffer, whichever is smaller, in whole `f32`s.
    pub max_binding_bytes: u64,
}

/// Dispatches recorded but not yet submitted.
struct Recorder {
    encoder: Option<wgpu::CommandEncoder>,
    params: Vec<u8>,
    arenas: [wgpu::Buffer; 2],
    current: usize,
    counters: WorkCounters,
    /// The open timing window, if any.
    window: Option<Window>,
}

/// What the device has been asked to do since it opened: for measuring a training
/// step by the difference of two readings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkCounters {
    /// Compute dispatches recorded.
    pub dispatches: u64,
    /// Command buffers submitted to the queue.
    pub submits: u64,
    /// Host time spent recording dispatches and submitting them (not waiting for the
    /// GPU), in nanoseconds.
    pub host_nanos: u64,
}

impl WorkCounters {
    /// The work done between `earlier` and `self`.
    pub fn since(self, earlier: WorkCounters) -> WorkCounters {
        WorkCounters {
            dispatches: self.dispatches - earlier.dispatches,
            submits: self.submits - earlier.submits,
            host_nanos: self.host_nanos - earlier.host_nanos,
        }
    }
}

/// A wgpu device with Kiln's pools, kernels and recorder.
pub struct Gpu {
    pub device: wgpu::Device,
    queue: wgpu::Queue,
    pub summary: AdapterSummary,
    max_binding: u64,
    pub buffers: Arc<BufferPool>,
    staging: BufferPool,
    /// Picks the GEMM kernels' tile shapes.
    pub tuner: Tuner,
    kernels: KernelCache,
    recorder: Mutex<Recorder>,
    dummies: Vec<wgpu::Buffer>,
    errors: Arc<Mutex<Vec<String>>>,
    /// Timestamp queries, where the adapter has them.
    timestamps: Option<TimestampQueries>,
    /// Parameter tensors one SGD dispatch updates on this adapter.
    pub sgd_group_size: u32,
}

fn device_error(message: impl Into<String>) -> KilnError {
    KilnError::Device(message.into())
}

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
        let dummies = (0..crate::sgd_group::GROUP_SLOTS.len())
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

    /// Fresh storage for `len` elements of `dtype` (contents unspecified).
    pub fn alloc(&self, len: usize, dtype: DType, op: &str) -> StorageRef {
        let bytes = (len.max(1) * 4) as u64;
        if bytes > self.max_binding {
            self.errors.lock().expect("error lock").push(format!(
                "{op}: a tensor of {bytes} bytes exceeds this device's largest storage binding ({} bytes); \
                 use a smaller batch",
                self.max_binding
            ));
        }
        Arc::new(GpuStorage::new(
            self.buffers.acquire(bytes.min(self.max_binding)),
            len,
            dtype,
            &self.buffers,
        ))
    }

    /// Copies host bytes into fresh storage.
    pub fn upload(&self, bytes: &[u8], len: usize, dtype: DType) -> StorageRef {
        let storage = self.alloc(len, dtype, "upload");
        let mut recorder = self.recorder.lock().expect("recorder lock");
        self.submit(&mut recorder);
        if !bytes.is_empty() {
            self.queue.write_buffer(gpu_storage(&storage).buffer(), 0, bytes);
        }
        storage
    }

    /// Records one dispatch of `kernel` with the parameter block `params` (the kernel's
    /// struct from `params.rs`), storage `bindings` (`None` for unused slots) and
    /// workgroup counts `groups`.
    pub fn dispatch<P: bytemuck::Pod>(
        &self,
        kernel: Kernel,
        op: &str,
        params: &P,
        bindings: &[Option<&StorageRef>],
        groups: [u32; 3],
    ) {
        let started = std::time::Instant::now();
        let compiled = self.kernels.get(&self.device, kernel);
        let mut recorder = self.recorder.lock().expect("recorder lock");
        if recorder.params.len() as u64 + PARAMS_SIZE > ARENA_BYTES {
            self.submit(&mut recorder);
        }
        let offset = recorder.params.len() as u32;
        let bytes = bytemuck::bytes_of(params);
        assert!(
            bytes.len() as u64 <= PARAMS_SIZE,
            "{kernel:?}'s parameter block exceeds {PARAMS_SIZE} bytes"
        );
        let mut block = vec![0u8; PARAMS_SIZE as usize];
        block[..bytes.len()].copy_from_slice(bytes);
        recorder.params.extend_from_slice(&block);
        let arena = &recorder.arenas[recorder.current];
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: arena,
                offset: 0,
                size: wgpu::BufferSize::new(PARAMS_SIZE),
            }),
        }];
        for (i, _) in kernel.slots().iter().enumerate() {
            let buffer = match bindings.get(i).copied().flatten() {
                Some(storage) => gpu_storage(storage).buffer(),
                None => &self.dummies[i],
            };
            entries
                .push(wgpu::BindGroupEntry { binding: i as u32 + 1, resource: buffer.as_entire_binding() });
        }
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(op),
            layout: &compiled.layout,
            entries: &entries,
        });
        let stamps = recorder.window.as_mut().and_then(|window| window.stamp(kernel.family()));
        let timestamp_writes = self.timestamps.as_ref().zip(stamps).map(|(queries, [begin, end])| {
            wgpu::ComputePassTimestampWrites {
                query_set: &queries.set,
                beginning_of_pass_write_index: Some(begin),
                end_of_pass_write_index: Some(end),
            }
        });
        let encoder = self.encoder(&mut recorder);
        let mut pass =
            encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some(op), timestamp_writes });
        pass.set_pipeline(&compiled.pipeline);
        pass.set_bind_group(0, &bind_group, &[offset]);
        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        drop(pass);
        recorder.counters.dispatches += 1;
        recorder.counters.host_nanos += started.elapsed().as_nanos() as u64;
    }

    /// The work recorded and submitted so far.
    pub fn counters(&self) -> WorkCounters {
        self.recorder.lock().expect("recorder lock").counters
    }

    /// Opens a timing window: from now on every dispatch is stamped (up to
    /// [`crate::timestamps::TIMED_DISPATCHES`]). False, and nothing opened, without
    /// timestamp queries or while a window is open.
    pub fn open_window(&self) -> bool {
        let mut recorder = self.recorder.lock().expect("recorder lock");
        if self.timestamps.is_none() || recorder.window.is_some() {
            return false;
        }
        recorder.window = Some(Window::default());
        true
    }

    /// Adds `flops` floating-point operations to `family` in the open timing window
    /// (nothing without one).
    pub fn count_flops(&self, family: &'static str, flops: f64) {
        if let Some(window) = self.recorder.lock().expect("recorder lock").window.as_mut() {
            window.add_flops(family, flops);
        }
    }

    /// Closes the timing window and returns the GPU time of its dispatches per kernel
    /// family (`None` when no window was open), after waiting for them. Errors wgpu
    /// reported stay queued for the next `synchronize` or read.
    pub fn close_window(&self) -> Result<Option<KernelTimes>> {
        let mut recorder = self.recorder.lock().expect("recorder lock");
        let Some(window) = recorder.window.take() else { return Ok(None) };
        let Some(queries) = self.timestamps.as_ref().filter(|_| window.queries() > 0) else {
            return Ok(Some(window.summarize(&[], 1.0)));
        };
        let bytes = u64::from(window.queries()) * u64::from(wgpu::QUERY_SIZE);
        let staging = self.staging.acquire(bytes);
        let encoder = self.encoder(&mut recorder);
        encoder.resolve_query_set(&queries.set, 0..window.queries(), &queries.resolve, 0);
        encoder.copy_buffer_to_buffer(&queries.resolve, 0, &staging, 0, bytes);
        let index = self.submit(&mut recorder);
        drop(recorder);
        let data = self.map_staging(staging, bytes, index, false)?;
        let ticks: Vec<u64> =
            data.chunks_exact(8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes"))).collect();
        Ok(Some(window.summarize(&ticks, queries.period_ns)))
    }

    /// How long `work`'s dispatches take on the GPU (by timestamps where the adapter has
    /// them and no window is open, else by the wall clock around waits for the GPU),
    /// leaving reported errors queued: the autotuner's clock.
    pub fn time(&self, work: &mut dyn FnMut()) -> Result<std::time::Duration> {
        if self.open_window() {
            work();
            let times = self.close_window()?.unwrap_or_default();
            return Ok(std::time::Duration::from_secs_f64(times.total_ms() / 1e3));
        }
        self.wait_idle()?;
        let start = std::time::Instant::now();
        work();
        self.wait_idle()?;
        Ok(start.elapsed())
    }

    /// Records a copy of `bytes` bytes from `src` to `dst`.
    pub fn copy(&self, src: &StorageRef, dst: &StorageRef, bytes: u64) {
        let mut recorder = self.recorder.lock().expect("recorder lock");
        let encoder = self.encoder(&mut recorder);
        encoder.copy_buffer_to_buffer(gpu_storage(src).buffer(), 0, gpu_storage(dst).buffer(), 0, bytes);
    }

    fn encoder<'r>(&self, recorder: &'r mut Recorder) -> &'r mut wgpu::CommandEncoder {
        recorder.encoder.get_or_insert_with(|| {
            self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("kiln step") })
        })
    }

    /// Submits what is recorded, with its parameter arena.
    fn submit(&self, recorder: &mut Recorder) -> Option<wgpu::SubmissionIndex> {
        let encoder = recorder.encoder.take()?;
        let started = std::time::Instant::now();
        if !recorder.params.is_empty() {
            self.queue.write_buffer(&recorder.arenas[recorder.current], 0, &recorder.params);
        }
        let index = self.queue.submit([encoder.finish()]);
        recorder.params.clear();
        recorder.current ^= 1;
        recorder.counters.submits += 1;
        recorder.counters.host_nanos += started.elapsed().as_nanos() as u64;
        Some(index)
    }

    /// Submits everything recorded, waits for the device, and reports its errors.
    pub fn synchronize(&self) -> Result<()> {
        let index = self.submit(&mut self.recorder.lock().expect("recorder lock"));
        let waited = self.wait(index);
        // A submission that failed validation also fails the wait; the error wgpu
        // reported for it says why, so it comes first.
        self.take_errors()?;
        waited
    }

    /// Submits the recorded work and waits for the GPU to finish it, leaving any errors
    /// wgpu reported for the next `synchronize` or read to return (the autotuner's
    /// clock: timing must not swallow a user's error).
    pub fn wait_idle(&self) -> Result<()> {
        let index = self.submit(&mut self.recorder.lock().expect("recorder lock"));
        self.wait(index)
    }

    fn wait(&self, index: Option<wgpu::SubmissionIndex>) -> Result<()> {
        self.device
            .poll(wgpu::PollType::Wait { submission_index: index, timeout: None })
            .map(|_| ())
            .map_err(|err| device_error(format!("waiting for the GPU failed: {err}")))
    }

    /// The errors wgpu reported since the last call, as one error.
    fn take_errors(&self) -> Result<()> {
        let errors = std::mem::take(&mut *self.errors.lock().expect("error lock"));
        if errors.is_empty() { Ok(()) } else { Err(device_error(errors.join("; "))) }
    }

    /// Copies `storage` back to the host.
    pub fn read(&self, storage: &StorageRef) -> Result<Vec<u8>> {
        let source = gpu_storage(storage);
        let bytes = source.bytes();
        if bytes == 0 {
            return self.synchronize().map(|()| Vec::new());
        }
        let staging = self.staging.acquire(bytes);
        let index = {
            let mut recorder = self.recorder.lock().expect("recorder lock");
            self.encoder(&mut recorder).copy_buffer_to_buffer(source.buffer(), 0, &staging, 0, bytes);
            self.submit(&mut recorder)
        };
        self.map_staging(staging, bytes, index, true)
    }

    /// Waits for submission `index`, then maps `staging` and copies its first `bytes`
    /// out; with `report_errors`, errors wgpu reported are returned first.
    fn map_staging(
        &self,
        staging: wgpu::Buffer,
        bytes: u64,
        index: Option<wgpu::SubmissionIndex>,
        report_errors: bool,
    ) -> Result<Vec<u8>> {
        let (sender, receiver) = std::sync::mpsc::channel();
        staging.slice(0..bytes).map_async(wgpu::MapMode::Read, move |result| {
            let _ = sender.send(result);
        });
        self.wait(index)?;
        if report_errors {
            self.take_errors()?;
        }
        receiver
            .recv()
            .map_err(|_| device_error("the GPU never answered a read"))?
            .map_err(|err| device_error(format!("reading from the GPU failed: {err}")))?;
        let data = staging
            .slice(0..bytes)
            .get_mapped_range()
            .map_err(|err| device_error(format!("reading from the GPU failed: {err}")))?
            .to_vec();
        staging.unmap();
        self.staging.release(staging);
        Ok(data)
    }
}

/// The GPU storage behind a tensor; storage of another backend is a bug.
pub fn gpu_storage(storage: &StorageRef) -> &GpuStorage {
    storage
        .as_any()
        .downcast_ref::<GpuStorage>()
        .expect("a tensor from another device reached the wgpu backend; move it with to_device()")
}

/// Workgroup counts for `items` invocations of a 256-wide kernel (or `items`
/// workgroups when `per_group` is 1), laid out in x then y.
pub fn grid(items: usize, per_group: usize) -> [u32; 3] {
    let groups = items.div_ceil(per_group).max(1);
    let x = groups.min(65_535);
    [x as u32, groups.div_ceil(x) as u32, 1]
}
