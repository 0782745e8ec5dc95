//! One run of the command: the model the flags choose, the Fashion-MNIST splits as
//! the recipe prepares them, and the trainer that trains or evaluates it, with the
//! header, the closing report and the plots.

use std::time::Duration;

use kiln_data::{CLASS_NAMES, FashionMnist, ImageDataset, Normalize, Order, Split};
use kiln_dist::DataParallel;
use kiln_nn::models::{self, Stem, VisionTransformer, VitConfig};
use kiln_nn::{Adam, DecayScope, Init, Initializer, Module, Optimizer, Sgd};
use kiln_tensor::{Device, Shape};
use kiln_train::{
    Ending, Evaluation, Finished, Paused, PlotsDir, Purpose, StopSignals, TrainConfig, TrainError, Trainer,
    final_report, memory, plots,
};

use crate::args::{Args, InitChoice, ModelChoice, OptimizerChoice};
use crate::device;
use crate::recipe::{Output, Recipe, Sampling};

/// "1 epoch", "5 epochs".
fn plural(count: usize, noun: &str) -> String {
    if count == 1 { format!("1 {noun}") } else { format!("{count} {noun}s") }
}

/// The optimizer the recipe names.
fn optimizer(recipe: &Recipe) -> Box<dyn Optimizer> {
    match recipe.optimizer {
        OptimizerChoice::Sgd => Box::new(
            Sgd::new(recipe.lr)
                .with_momentum(recipe.momentum)
                .with_nesterov(recipe.nesterov)
                .with_weight_decay(recipe.weight_decay),
        ),
        OptimizerChoice::Adam => Box::new(Adam::new(recipe.lr).with_weight_decay(recipe.weight_decay)),
        OptimizerChoice::Adamw => {
            Box::new(Adam::adamw(recipe.lr, recipe.weight_decay).with_decay_scope(DecayScope::MatricesOnly))
        }
    }
}

/// The recipe as one line for the run's header.
fn describe(args: &Args, recipe: &Recipe) -> String {
    let output = match recipe.output {
        Output::Softmax { label_smoothing } => format!("softmax, label smoothing {label_smoothing}"),
        Output::KerasSigmoid => "sigmoid with Keras' cross-entropy".to_string(),
    };
    let sampling = match recipe.sampling {
        Sampling::Shuffle => "shuffled".to_string(),
        Sampling::Draws { draw } => format!("draws of {draw} with replacement"),
    };
    // Momentum is SGD's; Adam's moments have fixed rates.
    let momentum = match recipe.optimizer {
        OptimizerChoice::Sgd => {
            format!("momentum {}{}, ", recipe.momentum, if recipe.nesterov { " (Nesterov)" } else { "" })
        }
        OptimizerChoice::Adam | OptimizerChoice::Adamw => String::new(),
    };
    format!(
        "recipe {:?}: {}, batch {} ({sampling}), {:?} lr {} {:?} schedule, warmup {} epochs, {momentum}weight decay {}, {output}, augment {:?}{}, {:?} init, seed {}",
        recipe.preset,
        plural(args.epochs, "epoch"),
        recipe.batch_size,
        recipe.optimizer,
        recipe.lr,
        recipe.schedule,
        recipe.warmup_epochs,
        recipe.weight_decay,
        recipe.augment,
        if recipe.normalize { ", normalized inputs" } else { "" },
        recipe.init,
        args.seed
    )
    .to_lowercase()
}

/// How a command that did not fail ended.
pub enum Outcome {
    /// Training (or evaluation) ran to its end.
    Done,
    /// Training paused early with a checkpoint.
    Paused(Paused),
    /// Training stopped on a non-finite loss, on every process alike.
    Diverged(String),
    /// The run was refused before any work, on every process alike (an output file
    /// that cannot be written, a checkpoint to resume that does not exist).
    Refused(String),
}

/// Metadata key of the pixel standardization the model was trained with.
const INPUT_KEY: &str = "input_normalization";

/// How a checkpoint's metadata describes the input standardization.
fn input_description(input: Option<Normalize>) -> String {
    match input {
        Some(Normalize { mean, std }) => format!("{mean},{std}"),
        None => "none".into(),
    }
}

/// The input standardization a checkpoint's metadata names (none for a checkpoint
/// that does not say).
fn saved_input(
    meta: &std::collections::BTreeMap<String, String>,
    args: &Args,
) -> Result<Option<Normalize>, String> {
    let Some(text) = meta.get(INPUT_KEY).filter(|t| t.as_str() != "none") else { return Ok(None) };
    let values: Vec<f32> = text.split(',').filter_map(|v| v.parse().ok()).collect();
    match values[..] {
        [mean, std] if std > 0.0 => Ok(Some(Normalize { mean, std })),
        _ => Err(format!(
            "cannot evaluate: {}'s `{INPUT_KEY}` is malformed: {text}",
            args.checkpoint().display()
        )),
    }
}

/// The model's name in the run's header.
fn model_title(model: ModelChoice) -> &'static str {
    match model {
        ModelChoice::Alexnet => "AlexNet",
        ModelChoice::Resnet => "ResNet-18",
        ModelChoice::Vit => "Vision Transformer",
    }
}

/// The trainer's settings from the flags and the recipe.
fn train_config(args: &Args, recipe: &Recipe) -> TrainConfig {
    TrainConfig {
        epochs: args.epochs,
        batch_size: recipe.batch_size,
        seed: args.seed,
        checkpoint: args.checkpoint(),
        checkpoint_every: recipe.checkpoint_every,
        max_steps: args.max_steps,
        resume: args.resume,
        purpose: if args.eval_only { Purpose::Evaluate } else { Purpose::Train },
        metrics: args.metrics.clone(),
        plots: args.plots.clone().map_or(PlotsDir::BesideCheckpoint, PlotsDir::Dir),
        progress: true,
    }
}

/// The test images resized to the model's input, standardized by `input`.
fn test_images(test: Split, recipe: &Recipe, input: Option<Normalize>) -> ImageDataset {
    ImageDataset::new(test, recipe.image_size).with_normalize(input).with_class_names(&CLASS_NAMES)
}

/// The training images as the recipe samples, augments and standardizes them.
fn training_images(train: Split, recipe: &Recipe) -> ImageDataset {
    let order = match recipe.sampling {
        Sampling::Shuffle => Order::Shuffle,
        Sampling::Draws { draw } => Order::WithReplacement { draws: (train.len() / draw).max(1) * draw },
    };
    ImageDataset::new(train, recipe.image_size)
        .with_order(order)
        .with_augment(recipe.augment.augment())
        .with_normalize(recipe.input_normalization())
        .with_class_names(&CLASS_NAMES)
}

/// Runs the command. In a data-parallel run every process runs it; only rank 0 checks
/// and writes files and prints. `Err` is this process's own failure (in a
/// data-parallel run, the others may not have failed).
pub fn run(
    args: &Args,
    recipe: &Recipe,
    parallel: &DataParallel,
    signals: &StopSignals,
) -> Result<Outcome, String> {
    let config = train_config(args, recipe);
    if let Err(message) = parallel.rank0_check(|| config.check_files()) {
        return Ok(Outcome::Refused(message));
    }
    let (device, device_line) = device::pick(args.backend, args.threads, parallel)?;
    let scheme = match recipe.init {
        InitChoice::Glorot => Init::GlorotUniform,
        InitChoice::He => Init::HeUniform,
    };
    let mut init = Initializer::new(&device, args.seed).with_scheme(scheme);
    let failed = |err: kiln_nn::NnError| err.to_string();
    let size = recipe.image_size;
    let setup = Setup { args, recipe, parallel, signals, config, device, device_line };
    match args.model {
        ModelChoice::Alexnet => setup.run(models::alexnet(&mut init, 1, 10, size).map_err(failed)?),
        ModelChoice::Resnet => setup.run(models::resnet18(&mut init, 1, 10, Stem::SmallImage)),
        ModelChoice::Vit => {
            let config = VitConfig { image_size: size, ..VitConfig::FASHION_MNIST };
            setup.run(VisionTransformer::new(&mut init, config).map_err(failed)?)
        }
    }
}

/// Prints the closing report of `evaluation`, with the training time and examples of
/// this run when it trained.
fn print_report(evaluation: &Evaluation, class_names: &[String], trained: Option<(Duration, usize)>) {
    let (training, examples) = trained.unwrap_or((Duration::ZERO, 0));
    let report = final_report(
        &evaluation.confusion,
        class_names,
        evaluation.score,
        training,
        examples,
        memory::peak_rss_bytes(),
    );
    print!("{report}");
}

/// What a run has settled before its model exists.
struct Setup<'a> {
    args: &'a Args,
    recipe: &'a Recipe,
    parallel: &'a DataParallel,
    signals: &'a StopSignals,
    config: TrainConfig,
    device: Device,
    device_line: String,
}

impl Setup<'_> {
    /// Trains (or evaluates) `model`; see [`run`].
    fn run<M: Module>(self, mut model: M) -> Result<Outcome, String> {
        let Setup { args, recipe, parallel, signals, config, device, device_line } = self;
        let root = parallel.is_root();
        parallel.broadcast_parameters(&mut model).map_err(|err| err.to_string())?;
        let input = Shape::from([1, recipe.image_size, recipe.image_size]);
        let summary = model.summary(&input).map_err(|err| err.to_string())?;
        if root {
            println!(
                "{} for 1×{1}×{1} Fashion-MNIST images\n{summary}",
                model_title(args.model),
                recipe.image_size
            );
            println!("device: {device_line}");
            if parallel.size() > 1 {
                println!(
                    "data parallel: {} processes, each {} of every batch of {}",
                    parallel.size(),
                    recipe.batch_size / parallel.size(),
                    recipe.batch_size
                );
            }
        }

        let data = FashionMnist::load(args.data_dir.as_deref()).map_err(|err| err.to_string())?;
        let train = data.train.limit(args.train_limit.unwrap_or(usize::MAX));
        let test = match recipe.test_sample {
            Some(n) => data.test.sample(n, args.seed),
            None => data.test.limit(args.test_limit.unwrap_or(usize::MAX)),
        };
        if root {
            println!(
                "data: {} ({} training images, {} test images, resized 28→{})",
                data.dir.display(),
                train.len(),
                test.len(),
                recipe.image_size
            );
        }

        let recipe_schedule = recipe.clone();
        let builder = Trainer::builder(
            model,
            training_images(train, recipe),
            test_images(test.clone(), recipe, recipe.input_normalization()),
        )
        .config(config)
        .optimizer(optimizer(recipe))
        .schedule(move |length| recipe_schedule.lr_schedule(length.epochs, length.steps_per_epoch))
        .loss(recipe.output)
        .device(&device)
        .data_parallel(parallel)
        .stop_flag(signals.stop.clone())
        .run_setting("model", args.model.name())
        .run_setting("image_size", recipe.image_size.to_string())
        .run_setting("recipe", format!("{:?}", recipe.preset).to_lowercase())
        .run_setting(INPUT_KEY, input_description(recipe.input_normalization()));
        let builder = if args.eval_only { builder.evaluate_only() } else { builder };
        let mut trainer = match builder.build() {
            Ok(trainer) => trainer,
            Err(TrainError::Refused(message)) => return Ok(Outcome::Refused(message)),
            Err(TrainError::Failed(message)) => return Err(message),
        };
        let confusion_png = trainer.config().confusion_plot();
        let class_names = trainer.class_names();
        let interrupted_evaluation =
            || Paused { message: "interrupted during evaluation: nothing to save".into(), interrupted: true };
        if args.eval_only {
            let meta = trainer.load_weights().map_err(|err| err.to_string())?;
            let test = test_images(test, recipe, saved_input(&meta, args)?);
            let Some(evaluation) = trainer.evaluate_on(&test).map_err(|err| err.to_string())? else {
                return Ok(Outcome::Paused(interrupted_evaluation()));
            };
            if root {
                print_report(&evaluation, &class_names, None);
                if let Some(png) = &confusion_png {
                    plots::confusion(png, &evaluation.confusion, &class_names)?;
                    println!("confusion matrix drawn in {}", png.display());
                }
            }
            return Ok(Outcome::Done);
        }
        if args.resume {
            let p = trainer.position();
            if root {
                println!(
                    "resuming from {} at epoch {}, batch {} (step {})",
                    args.checkpoint().display(),
                    p.epoch + 1,
                    p.batch,
                    p.step
                );
            }
        }
        if root {
            println!("{}", describe(args, recipe));
        }
        match trainer.fit().map_err(|err| err.to_string())? {
            Ending::Paused(paused) => Ok(Outcome::Paused(paused)),
            Ending::Diverged(message) => Ok(Outcome::Diverged(message)),
            Ending::Finished(Finished { training, examples, last }) => {
                let evaluation = match last {
                    Some(evaluation) => evaluation,
                    None => match trainer.evaluate().map_err(|err| err.to_string())? {
                        Some(evaluation) => evaluation,
                        None => return Ok(Outcome::Paused(interrupted_evaluation())),
                    },
                };
                if !root {
                    return Ok(Outcome::Done);
                }
                print_report(&evaluation, &class_names, Some((training, examples)));
                if parallel.size() > 1 {
                    let communication = parallel.communication_time().as_secs_f64();
                    println!(
                        "communication (rank 0): {communication:.1} s in collectives, {:.1}% of the run's training time",
                        100.0 * communication / training.as_secs_f64().max(1e-9)
                    );
                }
                if let (Some(png), Some(training_png)) = (&confusion_png, trainer.config().training_plot()) {
                    plots::confusion(png, &evaluation.confusion, &class_names)?;
                    println!("plots: {} and {}", training_png.display(), png.display());
                }
                if let Some(best) = trainer.history().best() {
                    println!(
                        "best checkpoint: {} (epoch {}, test accuracy {:.2}%)",
                        trainer.config().best_checkpoint().display(),
                        best.epoch,
                        100.0 * best.test.accuracy
                    );
                }
                Ok(Outcome::Done)
            }
        }
    }
}
