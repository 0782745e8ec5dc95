//! `kiln-bench`: measures Kiln on one backend and prints one JSON object:
//! GEMM GFLOP/s at AlexNet's shapes, each convolution's forward / input-gradient /
//! weight-gradient milliseconds, images/s of a training step (forward, backward, SGD
//! update) and of inference of AlexNet, ResNet-18 or the ViT (`--model`), and peak
//! memory.
//!
//! `cargo run -p kiln-bench --release -- --backend cpu --batch 32 --batch 128`; with
//! `--ops`, single ops at ResNet and ViT shapes instead.

mod fma_peak;
mod gemm_tiles;
mod ops;

use std::time::Instant;

use clap::{Parser, ValueEnum};
use kiln_cpu::CpuDevice;
use kiln_nn::models::{self, Stem, VisionTransformer, VitConfig};
use kiln_nn::{Initializer, Mode, Module, Optimizer, Sgd};
use kiln_tensor::{Device, Normal, Tensor, no_grad};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum BackendChoice {
    Cpu,
    Wgpu,
}

/// The model whose training and inference are timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ModelChoice {
    /// The reference notebook's AlexNet (224×224 inputs by default).
    Alexnet,
    /// ResNet-18 with the small-image stem (28×28 inputs by default).
    Resnet,
    /// The Fashion-MNIST Vision Transformer (28×28 inputs by default).
    Vit,
}

impl ModelChoice {
    /// The model's name, the key of its entries in the JSON.
    fn name(self) -> &'static str {
        match self {
            ModelChoice::Alexnet => "alexnet",
            ModelChoice::Resnet => "resnet",
            ModelChoice::Vit => "vit",
        }
    }
}

/// Measure Kiln's kernels and a model's training/inference throughput; prints JSON.
#[derive(Parser, Debug)]
#[command(name = "kiln-bench", about)]
struct Args {
    /// Backend to measure.
    #[arg(long, value_enum, default_value_t = BackendChoice::Cpu)]
    backend: BackendChoice,
    /// Batch sizes of the training/inference measurements (repeatable).
    #[arg(long = "batch", default_values_t = [32, 128])]
    batches: Vec<usize>,
    /// The model of the training and inference measurements.
    #[arg(long, value_enum, default_value_t = ModelChoice::Alexnet)]
    model: ModelChoice,
    /// Input image side [default: 224 (alexnet), 28 (resnet, vit)].
    #[arg(long)]
    image_size: Option<usize>,
    /// Timed training steps per batch size (after one warm-up step); the best is reported.
    #[arg(long, default_value_t = 3)]
    steps: usize,
    /// Batch of the per-layer and GEMM measurements.
    #[arg(long, default_value_t = 32)]
    layer_batch: usize,
    /// CPU threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Skip the GEMM and per-layer measurements (AlexNet's layers; always skipped for
    /// the other models).
    #[arg(long)]
    skip_layers: bool,
    /// Measure the device's fp32 FMA peak (on the CPU a register-only loop on every
    /// thread, on wgpu a WGSL FMA-loop shader) and report each GEMM and convolution as
    /// a fraction of it.
    #[arg(long)]
    fma_peak: bool,
    /// Measure single ops at ResNet and ViT shapes instead (forward and forward+backward
    /// milliseconds; `bench/pytorch_ops.py` measures the same list in PyTorch).
    #[arg(long)]
    ops: bool,
    /// On wgpu, measure every GEMM tile shape the autotuner can pick, each forced on
    /// its own device, at a few product shapes instead (GFLOP/s per shape).
    #[arg(long)]
    gemm_tiles: bool,
}

/// Seconds of the fastest of `reps` runs of `f` (after one warm-up), synchronizing the
/// device so GPU work is counted.
fn best_of(device: &Device, reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    device.synchronize().expect("device error");
    (0..reps.max(1))
        .map(|_| {
            let start = Instant::now();
            f();
            device.synchronize().expect("device error");
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// A finite number with two decimals, or `null`.
fn json_number(value: f64) -> String {
    if value.is_finite() { format!("{value:.2}") } else { "null".into() }
}

/// The CPU's model name and its SIMD extensions, as Linux reports them.
fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |key: &str| {
        info.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let flags = field("flags").unwrap_or_default();
    let mut simd: Vec<&str> =
        flags.split_whitespace().filter(|f| f.starts_with("avx") || *f == "fma").collect();
    simd.sort_unstable();
    format!("{} ({})", field("model name").unwrap_or_else(|| "unknown".into()), simd.join(" "))
}

fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 =
        status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The five convolutions of AlexNet: (name, in, out, kernel, stride, padding, input side).
fn conv_layers(image: usize) -> Vec<(&'static str, usize, usize, usize, usize, usize, usize)> {
    let c1 = (image - 11) / 4 + 1;
    let p1 = (c1 - 3) / 2 + 1;
    let p2 = (p1 - 3) / 2 + 1;
    vec![
        ("conv1", 1, 96, 11, 4, 0, image),
        ("conv2", 96, 256, 5, 1, 2, p1),
        ("conv3", 256, 384, 3, 1, 1, p2),
        ("conv4", 384, 384, 3, 1, 1, p2),
        ("conv5", 384, 256, 3, 1, 1, p2),
    ]
}

/// `gflops` as a fraction of the FMA peak, as JSON (`null` without a peak).
fn of_peak(gflops: f64, peak: Option<f64>) -> String {
    json_number(peak.map_or(f64::NAN, |peak| gflops / peak))
}

fn layer_figures(device: &Device, args: &Args, peak: Option<f64>) -> (Vec<String>, Vec<String>) {
    let n = args.layer_batch;
    let mut gemms = Vec::new();
    let flat = models::alexnet(&mut Initializer::new(device, 0), 1, 10, args.image_size())
        .ok()
        .and_then(|m| m.summary(&[1, args.image_size(), args.image_size()].into()).ok())
        .and_then(|s| s.rows.iter().find(|r| r.layer == "flatten").map(|r| r.output.numel()))
        .unwrap_or(6400);
    let mut shapes: Vec<(String, usize, usize, usize)> = vec![("square 1024".into(), 1024, 1024, 1024)];
    if wgpu_backend(device).is_some() {
        // The GPU's reference size (the one published WGSL GEMMs report).
        shapes.push(("square 4096".into(), 4096, 4096, 4096));
    }
    shapes.extend([(format!("fc1 batch {n}"), n, flat, 4096), (format!("fc2 batch {n}"), n, 4096, 4096)]);
    for (name, cin, cout, k, s, p, side) in conv_layers(args.image_size()) {
        let out = (side + 2 * p - k) / s + 1;
        shapes.push((format!("{name} as GEMM, 1 image"), cout, cin * k * k, out * out));
    }
    for (name, m, k, nn) in shapes {
        let a = Tensor::randn([m, k], 1, device);
        let b = Tensor::randn([k, nn], 2, device);
        let seconds = best_of(device, 3, || drop(a.matmul(&b)));
        let gflops = 2.0 * (m * k * nn) as f64 / seconds / 1e9;
        gemms.push(format!(
            "{{\"shape\": \"{name}\", \"m\": {m}, \"k\": {k}, \"n\": {nn}, \"ms\": {:.3}, \"gflops\": {gflops:.1}, \"of_peak\": {}}}",
            seconds * 1e3,
            of_peak(gflops, peak)
        ));
    }
    let mut convs = Vec::new();
    for (name, cin, cout, k, s, p, side) in conv_layers(args.image_size()) {
        let x = Tensor::randn([n, cin, side, side], 3, device).with_requires_grad();
        let w = Tensor::normal([cout, cin, k, k], Normal { mean: 0.0, std: 0.05 }, 4, device)
            .with_requires_grad();
        let b = Tensor::zeros([cout], device).with_requires_grad();
        let forward = best_of(device, 2, || drop(no_grad(|| x.conv2d(&w, Some(&b), s, p))));
        let y = x.conv2d(&w, Some(&b), s, p);
        let g = Tensor::ones(y.shape().clone(), device);
        let out = y.dims()[2];
        let flops = 2.0 * (n * cout * out * out * cin * k * k) as f64;
        let backend = device.backend();
        let geo = kiln_tensor::Conv2dGeometry {
            batch: n,
            in_channels: cin,
            in_h: side,
            in_w: side,
            out_channels: cout,
            kernel_h: k,
            kernel_w: k,
            stride: (s, s),
            padding: (p, p),
        };
        // conv1's input is the image, which needs no gradient: training never computes it.
        let input_grad = if cin == 1 {
            f64::NAN
        } else {
            best_of(device, 2, || drop(backend.conv2d_backward_input(g.storage(), w.storage(), &geo)))
        };
        let weight_grad =
            best_of(device, 2, || drop(backend.conv2d_backward_weight(x.storage(), g.storage(), &geo, true)));
        convs.push(format!(
            "{{\"layer\": \"{name}\", \"batch\": {n}, \"forward_ms\": {:.2}, \"input_grad_ms\": {}, \"weight_grad_ms\": {:.2}, \"forward_gflops\": {:.1}, \"input_grad_gflops\": {}, \"weight_grad_gflops\": {:.1}, \"of_peak\": [{}, {}, {}]}}",
            forward * 1e3,
            json_number(input_grad * 1e3),
            weight_grad * 1e3,
            flops / forward / 1e9,
            json_number(flops / input_grad / 1e9),
            flops / weight_grad / 1e9,
            of_peak(flops / forward / 1e9, peak),
            of_peak(flops / input_grad / 1e9, peak),
            of_peak(flops / weight_grad / 1e9, peak)
        ));
    }
    (gemms, convs)
}

/// The `"wgpu"` object: the first batch's training step's work, the autotuner's clock
/// and choices.
fn wgpu_figures(gpu: &kiln_wgpu::WgpuBackend, w: &StepWork) -> String {
    let autotune: Vec<String> = gpu.autotune_choices().iter().map(|c| format!("\"{c}\"")).collect();
    let kernel_times = w.kernel_times.as_ref().map_or("null".to_string(), |times| {
        let families: Vec<String> = times
            .families
            .iter()
            .map(|f| {
                format!(
                    "{{\"family\": \"{}\", \"dispatches\": {}, \"gpu_ms\": {:.4}, \"gflops\": {}}}",
                    f.family,
                    f.dispatches,
                    f.gpu_ms,
                    json_number(f.gflops_per_s().unwrap_or(f64::NAN))
                )
            })
            .collect();
        format!("[{}]", families.join(", "))
    });
    format!(
        "{{\"dispatches_per_train_step\": {}, \"submits_per_train_step\": {}, \"host_ms_per_train_step\": {:.2}, \"kernel_times_per_train_step\": {kernel_times}, \"autotune_clock\": \"{}\", \"autotune\": [{}]}}",
        w.counters.dispatches,
        w.counters.submits,
        w.counters.host_nanos as f64 / 1e6,
        gpu.autotune_clock().name(),
        autotune.join(", ")
    )
}

/// The wgpu backend behind `device`, if that is what it is.
fn wgpu_backend(device: &Device) -> Option<&kiln_wgpu::WgpuBackend> {
    device.backend().as_any().downcast_ref::<kiln_wgpu::WgpuBackend>()
}

/// What one training step asks of the GPU: dispatches, submits and host time, and the
/// GPU time per kernel family where the adapter has timestamp queries.
struct StepWork {
    counters: kiln_wgpu::WorkCounters,
    kernel_times: Option<kiln_wgpu::KernelTimes>,
}

impl Args {
    /// The input side: --image-size, else the model's own.
    fn image_size(&self) -> usize {
        self.image_size.unwrap_or(if self.model == ModelChoice::Alexnet { 224 } else { 28 })
    }
}

/// The model `choice` for 1-channel `side`² images and 10 classes; exits with a message
/// when the size does not fit it.
fn build_model(device: &Device, choice: ModelChoice, side: usize) -> Box<dyn Module> {
    let mut init = Initializer::new(device, 1);
    let built: kiln_nn::Result<Box<dyn Module>> = match choice {
        ModelChoice::Alexnet => {
            models::alexnet(&mut init, 1, 10, side).map(|m| Box::new(m) as Box<dyn Module>)
        }
        ModelChoice::Resnet => Ok(Box::new(models::resnet18(&mut init, 1, 10, Stem::SmallImage))),
        ModelChoice::Vit => {
            VisionTransformer::new(&mut init, VitConfig { image_size: side, ..VitConfig::FASHION_MNIST })
                .map(|m| Box::new(m) as Box<dyn Module>)
        }
    };
    built.unwrap_or_else(|err| {
        eprintln!("error: {err}");
        std::process::exit(2)
    })
}

/// Images/s of training steps and of inference at batch `n`; on wgpu also the work one
/// training step records.
fn model_figures(device: &Device, args: &Args, n: usize) -> (String, Option<StepWork>) {
    let side = args.image_size();
    let model = build_model(device, args.model, side);
    let model = model.as_ref();
    let mut sgd = Sgd::new(0.01).with_momentum(0.9);
    let x = Tensor::rand_uniform([n, 1, side, side], 0.0..1.0, 2, device);
    let labels = Tensor::from_i32([n], (0..n).map(|i| (i % 10) as i32).collect(), device);
    let mut step = 0;
    let mut train_step = || {
        let loss = model.forward(&x, Mode::train(step)).cross_entropy(&labels);
        let grads = loss.backward();
        sgd.step(model, &grads);
        loss.item().expect("loss readback");
        step += 1;
    };
    // Bytes the CPU device took from the system in the last timed step: buffers its
    // cache could not serve, each costing page faults and zeroing.
    let fresh_bytes = || device.cpu_backend().map(|cpu| cpu.memory().fresh_bytes());
    let mut last_step_fresh = None;
    let train = best_of(device, args.steps, || {
        let before = fresh_bytes();
        train_step();
        last_step_fresh = fresh_bytes().zip(before).map(|(after, before)| after - before);
    });
    let work = wgpu_backend(device).map(|gpu| {
        let before = gpu.counters();
        let timing = gpu.start_kernel_timing();
        train_step();
        let counters = gpu.counters().since(before);
        let kernel_times = if timing { gpu.kernel_times().expect("GPU timestamps") } else { None };
        StepWork { counters, kernel_times }
    });
    let infer = best_of(device, args.steps, || {
        no_grad(|| model.forward(&x, Mode::Eval)).argmax(1).to_vec_i32().expect("readback");
    });
    let figures = format!(
        "{{\"batch\": {n}, \"train_step_s\": {train:.4}, \"train_images_per_s\": {:.2}, \"inference_s\": {infer:.4}, \"inference_images_per_s\": {:.2}, \"fresh_mib_per_train_step\": {}}}",
        n as f64 / train,
        n as f64 / infer,
        last_step_fresh.map_or("null".into(), |bytes| json_number(bytes as f64 / (1 << 20) as f64))
    );
    (figures, work)
}

fn main() {
    let args = Args::parse();
    let device = match args.backend {
        BackendChoice::Cpu => match args.threads {
            Some(threads) => Device::cpu_with_threads(threads).expect("CPU thread pool"),
            None => Device::cpu(),
        },
        BackendChoice::Wgpu => match kiln_wgpu::shared() {
            Ok((device, _)) => device,
            Err(err) => {
                eprintln!("error: {err}");
                std::process::exit(1);
            }
        },
    };
    let threads = device.cpu_backend().map_or_else(rayon::current_num_threads, |cpu| cpu.threads());
    if args.ops {
        println!(
            "{{\"backend\": \"{}\", \"threads\": {threads}, \"cpu_model\": \"{}\", \"ops\": [{}]}}",
            device.name().replace('"', "'"),
            cpu_model().replace('"', "'"),
            ops::op_figures(&device, args.steps).join(", ")
        );
        return;
    }
    if args.gemm_tiles {
        if wgpu_backend(&device).is_none() {
            eprintln!("error: --gemm-tiles measures the wgpu backend's tile shapes; add --backend wgpu");
            std::process::exit(2);
        }
        match gemm_tiles::tile_figures() {
            Ok(rows) => println!(
                "{{\"backend\": \"{}\", \"gemm_tiles\": [{}]}}",
                device.name().replace('"', "'"),
                rows.join(", ")
            ),
            Err(err) => {
                eprintln!("error: {err}");
                std::process::exit(1);
            }
        }
        return;
    }
    let (peak_json, peak_gflops) = match (args.fma_peak, wgpu_backend(&device)) {
        (false, _) => ("null".to_string(), None),
        (true, Some(gpu)) => match gpu.fma_peak_gflops() {
            Ok(gflops) => (format!("{{\"isa\": \"wgsl f32 fma\", \"gflops\": {gflops:.1}}}"), Some(gflops)),
            Err(err) => {
                eprintln!("error: the FMA peak shader failed: {err}");
                std::process::exit(1);
            }
        },
        (true, None) => {
            let p = fma_peak::fma_peak(threads);
            let json = format!(
                "{{\"isa\": \"{}\", \"threads\": {}, \"gflops\": {:.1}}}",
                p.isa, p.threads, p.gflops
            );
            (json, Some(p.gflops))
        }
    };
    let skip_layers = args.skip_layers || args.model != ModelChoice::Alexnet;
    let (gemms, convs) =
        if skip_layers { (Vec::new(), Vec::new()) } else { layer_figures(&device, &args, peak_gflops) };
    let (models, work): (Vec<String>, Vec<_>) =
        args.batches.iter().map(|&n| model_figures(&device, &args, n)).unzip();
    let wgpu_json = match (wgpu_backend(&device), work.into_iter().flatten().next()) {
        (Some(gpu), Some(w)) => wgpu_figures(gpu, &w),
        _ => "null".to_string(),
    };
    let model = args.model.name();
    println!(
        "{{\"backend\": \"{}\", \"threads\": {}, \"image_size\": {}, \"cpu_model\": \"{}\", \"fma_peak\": {peak_json}, \"gemm\": [{}], \"conv\": [{}], \"model\": \"{model}\", \"{model}\": [{}], \"wgpu\": {wgpu_json}, \"peak_rss_bytes\": {}, \"device_memory_bytes\": {}}}",
        device.name().replace('"', "'"),
        threads,
        args.image_size(),
        cpu_model().replace('"', "'"),
        gemms.join(", "),
        convs.join(", "),
        models.join(", "),
        peak_rss_bytes().unwrap_or(0),
        device.memory_in_use()
    );
}
