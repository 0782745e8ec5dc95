//! Normalization layers with `torch.nn`'s names, parameters and buffers: `BatchNorm1d`
//! and `BatchNorm2d` (batch statistics in training, running statistics in evaluation),
//! `LayerNorm` and `GroupNorm`, each one fused kernel forward and one backward: batch
//! normalization runs `batch_norm` (which returns the batch's statistics for the
//! running ones), layer normalization `layer_norm`, group normalization
//! `normalize_axis`. The scale (`weight`, ones) and shift (`bias`, zeros) are trained
//! like any parameter.

use std::sync::Mutex;

use kiln_tensor::{BatchStatistics, Device, Shape, Tensor, no_grad};

use super::{visit_weight_and_bias, visit_weight_and_bias_mut};
use crate::{Mode, Module, NnError, Result, SummaryStyle};

/// PyTorch's default `eps` of every normalization layer.
pub const DEFAULT_EPS: f32 = 1e-5;
/// PyTorch's default `momentum` of the running statistics.
pub const DEFAULT_MOMENTUM: f32 = 0.1;

/// The scale and shift of a normalization layer: `weight` ones and `bias` zeros of
/// `shape`, trained.
fn affine(device: &Device, shape: &[usize]) -> (Tensor, Tensor) {
    (
        Tensor::ones(shape.to_vec(), device).with_requires_grad(),
        Tensor::zeros(shape.to_vec(), device).with_requires_grad(),
    )
}

/// BatchNorm's running statistics, updated by training passes through `&self`.
struct RunningStats {
    mean: Tensor,
    var: Tensor,
    /// Training batches seen (PyTorch's `num_batches_tracked`), a one-element tensor.
    batches: Tensor,
}

/// Batch normalization over the channels of `[N, C]`, `[N, C, L]` or `[N, C, H, W]`
/// (PyTorch's `BatchNorm1d` and `BatchNorm2d`, which differ only in the input ranks
/// they accept). In training each channel is normalized by the batch's mean and
/// (population) variance, and the running statistics move towards them by `momentum`
/// (the variance's sample form, as PyTorch); in evaluation the running statistics
/// normalize. Parameters `weight`, `bias`; buffers `running_mean`, `running_var`,
/// `num_batches_tracked`.
///
/// In a data-parallel run each process normalizes by the statistics of its own shard
/// (as PyTorch's DDP without `SyncBatchNorm`).
///
/// ```
/// use kiln_cpu::CpuDevice;
/// use kiln_nn::{BatchNorm2d, Mode, Module};
/// use kiln_tensor::{Device, Normal, Tensor};
///
/// let device = Device::cpu();
/// let bn = BatchNorm2d::new(&device, 3);
/// let x = Tensor::normal([4, 3, 5, 5], Normal { mean: 2.0, std: 3.0 }, 0, &device);
/// let y = bn.forward(&x, Mode::train(0));
/// let mean = y.mean_axes(&[0, 2, 3], false).to_vec().unwrap();
/// assert!(mean.iter().all(|m| m.abs() < 1e-5));
/// let names: Vec<String> = bn.named_buffers().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["running_mean", "running_var", "num_batches_tracked"]);
/// ```
pub struct BatchNorm {
    weight: Tensor,
    bias: Tensor,
    running: Mutex<RunningStats>,
    eps: f32,
    momentum: f32,
    /// The input ranks accepted (with the batch axis): `[2, 3]` or `[4]`.
    ranks: &'static [usize],
}

/// PyTorch's `BatchNorm1d`: [`BatchNorm1d::new`] makes a [`BatchNorm`] of `[N, C]` or
/// `[N, C, L]`.
pub struct BatchNorm1d;

impl BatchNorm1d {
    /// `BatchNorm1d(channels)` with PyTorch's defaults.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(device: &Device, channels: usize) -> BatchNorm {
        BatchNorm::with_ranks(device, channels, &[2, 3])
    }
}

/// PyTorch's `BatchNorm2d`: [`BatchNorm2d::new`] makes a [`BatchNorm`] of
/// `[N, C, H, W]`.
pub struct BatchNorm2d;

impl BatchNorm2d {
    /// `BatchNorm2d(channels)` with PyTorch's defaults.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(device: &Device, channels: usize) -> BatchNorm {
        BatchNorm::with_ranks(device, channels, &[4])
    }
}

impl BatchNorm {
    fn with_ranks(device: &Device, channels: usize, ranks: &'static [usize]) -> Self {
        let (weight, bias) = affine(device, &[channels]);
        let running = RunningStats {
            mean: Tensor::zeros([channels], device),
            var: Tensor::ones([channels], device),
            batches: Tensor::zeros([], device),
        };
        BatchNorm {
            weight,
            bias,
            running: Mutex::new(running),
            eps: DEFAULT_EPS,
            momentum: DEFAULT_MOMENTUM,
            ranks,
        }
    }

    /// Sets `eps`, added to the variance.
    pub fn with_eps(mut self, eps: f32) -> Self {
        self.eps = eps;
        self
    }

    /// Sets the running statistics' momentum (the weight of each new batch).
    pub fn with_momentum(mut self, momentum: f32) -> Self {
        assert!((0.0..=1.0).contains(&momentum), "BatchNorm: momentum {momentum} is outside [0, 1]");
        self.momentum = momentum;
        self
    }

    /// The running mean and variance, one value per channel.
    pub fn running_stats(&self) -> (Tensor, Tensor) {
        let running = self.running.lock().expect("BatchNorm's statistics lock");
        (running.mean.clone(), running.var.clone())
    }

    /// The per-channel `scale` and `shift` that evaluation applies, `x·scale + shift`:
    /// `weight / √(running_var + eps)` and `bias − running_mean·scale`.
    pub fn eval_scale_and_shift(&self) -> (Tensor, Tensor) {
        let (mean, var) = self.running_stats();
        let scale = self.weight.div(&var.add_scalar(self.eps).sqrt());
        let shift = self.bias.sub(&mean.mul(&scale));
        (scale, shift)
    }

    fn channels(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Moves the running statistics towards this batch's.
    fn track(&self, mean: &Tensor, var: &Tensor, count: usize) {
        no_grad(|| {
            let mut running = self.running.lock().expect("BatchNorm's statistics lock");
            let m = self.momentum;
            let sample_var = var.mul_scalar(count as f32 / count.saturating_sub(1).max(1) as f32);
            running.mean = running.mean.mul_scalar(1.0 - m).add(&mean.mul_scalar(m));
            running.var = running.var.mul_scalar(1.0 - m).add(&sample_var.mul_scalar(m));
            running.batches = running.batches.add_scalar(1.0);
        });
    }
}

impl Module for BatchNorm {
    fn forward(&self, x: &Tensor, mode: Mode) -> Tensor {
        let rank = x.shape().rank();
        assert!(
            self.ranks.contains(&rank) && x.dims()[1] == self.channels(),
            "BatchNorm({}): expected {:?}-dimensional input with {} channels, got shape {}",
            self.channels(),
            self.ranks,
            self.channels(),
            x.shape()
        );
        // One fused op: the batch's statistics in training (then folded into the running
        // ones), the running statistics in evaluation.
        match mode {
            Mode::Train { .. } => {
                let normalized = x.batch_norm(&self.weight, &self.bias, BatchStatistics::Batch, self.eps);
                self.track(&normalized.mean, &normalized.var, x.numel() / self.channels());
                normalized.output
            }
            Mode::Eval => {
                let (mean, var) = self.running_stats();
                let given = BatchStatistics::Given { mean: &mean, var: &var };
                x.batch_norm(&self.weight, &self.bias, given, self.eps).output
            }
        }
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape> {
        if !self.ranks.contains(&(input.rank() + 1)) || input.dims().first() != Some(&self.channels()) {
            return Err(NnError::Shape(format!(
                "batch norm {}: expects {} channels first, got {input}",
                self.channels(),
                self.channels()
            )));
        }
        Ok(input.clone())
    }

    fn summary_style(&self) -> SummaryStyle {
        SummaryStyle::Fold(" + batch norm".into())
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        visit_weight_and_bias(prefix, &self.weight, Some(&self.bias), f);
    }

    fn visit_parameters_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor)) {
        visit_weight_and_bias_mut(prefix, &mut self.weight, Some(&mut self.bias), f);
    }

    fn visit_buffers(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        let running = self.running.lock().expect("BatchNorm's statistics lock");
        f(&format!("{prefix}running_mean"), &running.mean);
        f(&format!("{prefix}running_var"), &running.var);
        f(&format!("{prefix}num_batches_tracked"), &running.batches);
    }

    fn visit_buffers_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor)) {
        let running = self.running.get_mut().expect("BatchNorm's statistics lock");
        f(&format!("{prefix}running_mean"), &mut running.mean);
        f(&format!("{prefix}running_var"), &mut running.var);
        f(&format!("{prefix}num_batches_tracked"), &mut running.batches);
    }
}

/// Layer normalization over the last dimensions (`normalized_shape`) of each example
/// (PyTorch's `LayerNorm`), with a per-element `weight` and `bias` of that shape.
///
/// ```
/// use kiln_cpu::CpuDevice;
/// use kiln_nn::{LayerNorm, Mode, Module};
/// use kiln_tensor::{Device, Normal, Tensor};
///
/// let device = Device::cpu();
/// let norm = LayerNorm::new(&device, &[8]);
/// let y = norm.forward(&Tensor::normal([2, 5, 8], Normal { mean: 1.0, std: 2.0 }, 0, &device), Mode::Eval);
/// assert!(y.mean_axes(&[2], false).to_vec().unwrap().iter().all(|m| m.abs() < 1e-5));
/// ```
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl LayerNorm {
    /// Normalizes over trailing dimensions `normalized_shape`, PyTorch's defaults.
    pub fn new(device: &Device, normalized_shape: &[usize]) -> Self {
        assert!(!normalized_shape.is_empty(), "LayerNorm: normalized_shape is empty");
        let (weight, bias) = affine(device, normalized_shape);
        LayerNorm { weight, bias, eps: DEFAULT_EPS }
    }

    /// Sets `eps`, added to the variance.
    pub fn with_eps(mut self, eps: f32) -> Self {
        self.eps = eps;
        self
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Tensor {
        x.layer_norm(self.weight.dims(), Some(&self.weight), Some(&self.bias), self.eps)
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape> {
        let normalized = self.weight.dims();
        if input.rank() < normalized.len() || input.dims()[input.rank() - normalized.len()..] != *normalized {
            return Err(NnError::Shape(format!(
                "layer norm: expects inputs ending in {}, got {input}",
                self.weight.shape()
            )));
        }
        Ok(input.clone())
    }

    fn summary_style(&self) -> SummaryStyle {
        SummaryStyle::Fold(" + layer norm".into())
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        visit_weight_and_bias(prefix, &self.weight, Some(&self.bias), f);
    }

    fn visit_parameters_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor)) {
        visit_weight_and_bias_mut(prefix, &mut self.weight, Some(&mut self.bias), f);
    }
}

/// Group normalization (PyTorch's `GroupNorm`): the channels of `[N, C, …]` split into
/// `groups` groups, each example's group normalized over its channels and positions,
/// then a per-channel `weight` and `bias`.
pub struct GroupNorm {
    groups: usize,
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl GroupNorm {
    /// `groups` groups of `channels` channels (which `groups` must divide).
    pub fn new(device: &Device, groups: usize, channels: usize) -> Self {
        assert!(
            groups > 0 && channels.is_multiple_of(groups),
            "GroupNorm: {groups} groups do not divide {channels} channels"
        );
        let (weight, bias) = affine(device, &[channels]);
        GroupNorm { groups, weight, bias, eps: DEFAULT_EPS }
    }

    /// Sets `eps`, added to the variance.
    pub fn with_eps(mut self, eps: f32) -> Self {
        self.eps = eps;
        self
    }
}

impl Module for GroupNorm {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Tensor {
        let channels = self.weight.dims()[0];
        assert!(
            x.shape().rank() >= 2 && x.dims()[1] == channels,
            "GroupNorm: expected [N, {channels}, …], got shape {}",
            x.shape()
        );
        let n = x.dims()[0];
        let grouped = x.reshape([n, self.groups, x.numel() / (n * self.groups)]);
        let normalized = grouped.normalize_axis(2, self.eps).reshape(x.shape().clone());
        let mut shape = vec![1; x.shape().rank()];
        shape[1] = channels;
        normalized.mul(&self.weight.reshape(shape.clone())).add(&self.bias.reshape(shape))
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape> {
        let channels = self.weight.dims()[0];
        if input.dims().first() != Some(&channels) {
            return Err(NnError::Shape(format!(
                "group norm: expects {channels} channels first, got {input}"
            )));
        }
        Ok(input.clone())
    }

    fn summary_style(&self) -> SummaryStyle {
        SummaryStyle::Fold(" + group norm".into())
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        visit_weight_and_bias(prefix, &self.weight, Some(&self.bias), f);
    }

    fn visit_parameters_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor)) {
        visit_weight_and_bias_mut(prefix, &mut self.weight, Some(&mut self.bias), f);
    }
}
