//! The command line: every flag with its help text, and the checks that reject
//! impossible values before any work starts.

use std::path::{Component, Path, PathBuf};

use clap::{Parser, ValueEnum};

use crate::limits;
use crate::recipe::{AugmentChoice, Recipe, RecipeChoice, ScheduleChoice};

/// Which device runs the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    /// A real GPU through wgpu when one exists, else the CPU.
    Auto,
    /// The wgpu backend (Vulkan, Metal, DX12).
    Wgpu,
    /// The CPU backend.
    Cpu,
}

/// Which optimizer trains the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OptimizerChoice {
    /// Stochastic gradient descent (with --momentum, --weight-decay).
    Sgd,
    /// Adam (with --weight-decay as L2).
    Adam,
    /// AdamW: Adam with --weight-decay decoupled from the gradient, applied to weight
    /// matrices and kernels only (biases and normalization scales are not decayed).
    Adamw,
}

/// Which model is trained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModelChoice {
    /// The reference notebook's AlexNet, on images resized to --image-size (224).
    Alexnet,
    /// ResNet-18 (torchvision's names) with a small-image stem, on 28×28 images.
    Resnet,
    /// A Vision Transformer (6 blocks of width 128, 4×4 patches), on 28×28 images.
    Vit,
}

impl ModelChoice {
    /// The model's name in messages and file names.
    pub fn name(self) -> &'static str {
        match self {
            ModelChoice::Alexnet => "alexnet",
            ModelChoice::Resnet => "resnet",
            ModelChoice::Vit => "vit",
        }
    }
}

/// How the weights start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum InitChoice {
    /// Glorot/Xavier uniform: Keras' default, used by the notebook.
    Glorot,
    /// Kaiming/He uniform: scaled for ReLU networks.
    He,
}

/// Train the AlexNet of the reference Keras notebook (or a ResNet-18 or a Vision
/// Transformer) on Fashion-MNIST, then report test accuracy per class.
#[derive(Clone, Debug, Parser)]
#[command(name = "alexnet-example", version, about, long_about = None)]
pub struct Args {
    /// Device to train on: auto picks a real GPU if there is one, else the CPU.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    pub backend: BackendChoice,

    /// The model to train; each has its own recipe defaults.
    #[arg(long, value_enum, default_value_t = ModelChoice::Alexnet)]
    pub model: ModelChoice,

    /// Passes over the training set.
    #[arg(long, default_value_t = 5)]
    pub epochs: usize,

    /// Preset of every training setting below that has a "default:" per recipe; a flag
    /// given overrides its preset value.
    #[arg(long, value_enum, default_value_t = RecipeChoice::Kiln)]
    pub recipe: RecipeChoice,

    /// Images per training step [default: 64 (kiln), 32 (notebook), 128 (kiln: resnet, vit)].
    #[arg(long)]
    pub batch_size: Option<usize>,

    /// Learning rate, the peak of --schedule [default: 0.05 (kiln), 0.01 (notebook), 0.1
    /// (kiln: resnet), 0.001 (kiln: vit)].
    #[arg(long)]
    pub lr: Option<f32>,

    /// How the learning rate changes over training, step by step [default: onecycle
    /// (kiln), constant (notebook)].
    #[arg(long, value_enum)]
    pub schedule: Option<ScheduleChoice>,

    /// Epochs (fractions allowed, e.g. 0.5) of linear warmup from 0 to --lr before the
    /// schedule; for onecycle, the length of its rise [default: 0].
    #[arg(long, value_name = "EPOCHS")]
    pub warmup_epochs: Option<f32>,

    /// SGD momentum, 0 for plain SGD [default: 0.9 (kiln), 0 (notebook)].
    #[arg(long)]
    pub momentum: Option<f32>,

    /// Nesterov momentum for SGD [default: true (kiln), false (notebook)].
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub nesterov: Option<bool>,

    /// Weight decay: L2 in the gradient for sgd and adam, decoupled for adamw [default: 0.0005 (kiln), 0 (notebook; kiln: vit), 0.01 (adamw, PyTorch's)].
    #[arg(long)]
    pub weight_decay: Option<f32>,

    /// Share of each target spread evenly over all classes, 0 for hard labels (a value
    /// here also makes the notebook's sigmoid output a softmax) [default: 0.1 (kiln)].
    #[arg(long, value_name = "X")]
    pub label_smoothing: Option<f32>,

    /// Random changes to the training images [default: none (alexnet, vit: in their
    /// default runs augmentation measured worse, see docs/benchmarks.md), flip+crop
    /// (kiln: resnet)].
    #[arg(long, value_enum)]
    pub augment: Option<AugmentChoice>,

    /// Standardize the pixels, (x − 0.2860) / 0.3530, Fashion-MNIST's mean and standard
    /// deviation, instead of feeding [0, 1] [default: false (alexnet), true (resnet, vit)].
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub normalize: Option<bool>,

    /// Optimizer [default: sgd, adam (kiln: vit)].
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerChoice>,

    /// Weight initialization [default: he (kiln), glorot (notebook; kiln: vit)].
    #[arg(long, value_enum)]
    pub init: Option<InitChoice>,

    /// Side of the square images fed to the network [default: 224 (alexnet, as the
    /// notebook; at least 67), 28 (resnet, vit: Fashion-MNIST's own size)].
    #[arg(long)]
    pub image_size: Option<usize>,

    /// Train on only the first N training images (quick runs).
    #[arg(long, value_name = "N")]
    pub train_limit: Option<usize>,

    /// Evaluate on only the first N test images (the notebook recipe otherwise scores
    /// 5,000 random ones).
    #[arg(long, value_name = "N")]
    pub test_limit: Option<usize>,

    /// Directory holding the four Fashion-MNIST *-ubyte.gz files (default: look in
    /// KILN_DATA_DIR, ~/.cache/kiln, /usr/share/datasets, else download).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Seed of the weights, the shuffles and dropout: the same seed repeats a run.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// CPU threads, in a pool of the CPU device's own (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,

    /// Checkpoint file (safetensors, loadable by PyTorch) [default:
    /// checkpoints/{model}.safetensors].
    #[arg(long, value_name = "PATH")]
    pub checkpoint: Option<PathBuf>,

    /// Also save a checkpoint every N training steps (one is always saved after each
    /// epoch, and the best epoch's model beside it as `…-best.safetensors`)
    /// [default: none (kiln), 80 (notebook)].
    #[arg(long, value_name = "STEPS")]
    pub checkpoint_every: Option<usize>,

    /// Continue from --checkpoint at the epoch and step it was saved at.
    #[arg(long)]
    pub resume: bool,

    /// Only evaluate the model in --checkpoint on the test set.
    #[arg(long)]
    pub eval_only: bool,

    /// Stop after N training steps in this run, saving a checkpoint (continue later with --resume).
    #[arg(long, value_name = "N")]
    pub max_steps: Option<usize>,

    /// Directory for training.png (curves, redrawn after each epoch) and confusion.png
    /// (the final confusion matrix) [default: the checkpoint's directory].
    #[arg(long, value_name = "DIR")]
    pub plots: Option<PathBuf>,

    /// Write one JSON object per epoch to this file (JSON lines).
    #[arg(long, value_name = "PATH")]
    pub metrics: Option<PathBuf>,

    /// Data-parallel training over the processes an MPI launcher started
    /// (`mpirun -n N alexnet-example --distributed ...`; needs a build with
    /// `--features mpi`): each process trains on its share of every batch
    /// (--batch-size is the global batch, a multiple of N), and rank 0 prints and
    /// writes the files.
    #[arg(long)]
    pub distributed: bool,
}

impl Args {
    /// The run's training settings, or a one-line reason why the flags are impossible.
    pub fn validate(&self) -> Result<Recipe, String> {
        let positive = [
            ("--epochs", Some(self.epochs)),
            ("--batch-size", self.batch_size),
            ("--train-limit", self.train_limit),
            ("--test-limit", self.test_limit),
            ("--threads", self.threads),
            ("--checkpoint-every", self.checkpoint_every),
            ("--max-steps", self.max_steps),
        ];
        for (flag, value) in positive {
            if value == Some(0) {
                return Err(format!("{flag} must be at least 1"));
            }
        }
        let recipe = Recipe::from_args(self);
        recipe.validate()?;
        if self.resume && self.eval_only {
            return Err("--resume and --eval-only exclude each other".into());
        }
        if let Some(threads) = self.threads {
            limits::check_threads(threads)?;
        }
        limits::check_image_size(self.model, recipe.image_size, recipe.batch_size)?;
        if let Some(metrics) = &self.metrics
            && same_file(metrics, &self.checkpoint())
        {
            return Err(format!(
                "--metrics and --checkpoint are the same file ({}): writing one would destroy the other; give them different paths",
                metrics.display()
            ));
        }
        Ok(recipe)
    }
}

impl Args {
    /// The checkpoint file: --checkpoint, else `checkpoints/{model}.safetensors`.
    pub fn checkpoint(&self) -> PathBuf {
        self.checkpoint
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("checkpoints/{}.safetensors", self.model.name())))
    }
}

/// `path` made absolute, with `.` and `..` folded and its longest existing ancestor
/// resolved (symbolic links), so two spellings of one file compare equal even before
/// the file or its directory exists.
fn resolved(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut folded = PathBuf::new();
    for part in absolute.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                folded.pop();
            }
            other => folded.push(other),
        }
    }
    let mut missing = Vec::new();
    let mut existing = folded.as_path();
    while let Some(parent) = existing.parent() {
        if let Ok(real) = existing.canonicalize() {
            return missing.iter().rev().fold(real, |dir, name| dir.join(name));
        }
        missing.extend(existing.file_name());
        existing = parent;
    }
    folded
}

/// Whether `a` and `b` name the same file.
fn same_file(a: &Path, b: &Path) -> bool {
    resolved(a) == resolved(b)
}
