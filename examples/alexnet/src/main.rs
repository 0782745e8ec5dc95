//! `alexnet-example`: trains the reference Keras notebook's AlexNet on Fashion-MNIST
//! with Kiln. Run `cargo run -p alexnet-example --release -- --help` for the flags.

mod args;
mod cluster;
mod device;
mod limits;
mod recipe;

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use kiln_data::{CLASS_NAMES, FashionMnist, ImageDataset, Normalize, Order, Split};
use kiln_dist::DataParallel;
use kiln_nn::{Adam, Init, Initializer, Module, Optimizer, Sgd, models};
use kiln_tensor::Shape;
use kiln_train::{
    Ending, Evaluation, Finished, Paused, PlotsDir, Purpose, StopSignals, TrainConfig, TrainError, Trainer,
    final_report, memory, plots,
};

use crate::args::{Args, InitChoice, OptimizerChoice};
use crate::recipe::{Output, Recipe, Sampling};

/// Exit status of a run refused before it started (flags, settings).
const USAGE: u8 = 2;

fn main() -> ExitCode {
    quiet_vulkan_device_select();
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(err) if !err.use_stderr() => {
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            write_line(&one_line(&err.render().to_string()));
            return ExitCode::from(USAGE);
        }
    };
    let recipe = match args.validate() {
        Ok(recipe) => recipe,
        Err(message) => {
            write_error(&message);
            return ExitCode::from(USAGE);
        }
    };
    let parallel = match cluster::join(&args) {
        Ok(parallel) => parallel,
        Err(message) => {
            write_error(&message);
            return ExitCode::from(USAGE);
        }
    };
    if let Err(err) = parallel.check_batch_size(recipe.batch_size) {
        return exit_together(&parallel, &err.to_string(), USAGE);
    }
    let signals = match StopSignals::install() {
        Ok(signals) => signals,
        Err(message) if parallel.size() > 1 => abort(&parallel, &message),
        Err(message) => {
            write_error(&message);
            return ExitCode::FAILURE;
        }
    };
    match run(&args, &recipe, &parallel, &signals) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Refused(message) | Outcome::Diverged(message)) => exit_together(&parallel, &message, 1),
        Ok(Outcome::Paused(Paused { message, interrupted })) => {
            if parallel.is_root() {
                write_line(&message);
            }
            let status = if interrupted { signals.exit_status(parallel.size()) } else { 0 };
            ExitCode::from(status)
        }
        Err(message) if parallel.size() > 1 => abort(&parallel, &message),
        Err(message) => {
            write_error(&message);
            ExitCode::FAILURE
        }
    }
}

/// Writes `line` and a newline to stderr in one write, so that nothing (such as an MPI
/// launcher's banner about another process) lands inside the line.
fn write_line(line: &str) {
    // Nothing is left to tell the user if stderr itself is gone.
    let _ = std::io::stderr().lock().write_all(format!("{line}\n").as_bytes());
}

/// Writes `error: {message}` as one line (see [`write_line`]).
fn write_error(message: &str) {
    write_line(&format!("error: {message}"));
}

/// Ends a run on an error that every process found alike: rank 0 alone reports it,
/// and no process exits before that line is written (an MPI launcher ends the other
/// processes as soon as one exits with an error).
fn exit_together(parallel: &DataParallel, message: &str, status: u8) -> ExitCode {
    if parallel.is_root() {
        write_error(message);
    }
    parallel.barrier();
    ExitCode::from(status)
}

/// Ends every process of a data-parallel run on this process's own error: the others
/// may be waiting in a collective for this one, so they are ended rather than left
/// hanging.
fn abort(parallel: &DataParallel, message: &str) -> ! {
    write_line(&format!("error (rank {} of {}): {message}", parallel.rank(), parallel.size()));
    parallel.abort(1)
}

/// Mesa's Vulkan device-select layer prints `error: XDG_RUNTIME_DIR is invalid or not
/// set` on every headless run; it selects nothing Kiln needs (Kiln picks its adapter
/// itself), so it is switched off unless the user set `NODEVICE_SELECT` themselves.
fn quiet_vulkan_device_select() {
    if std::env::var_os("NODEVICE_SELECT").is_none() {
        // SAFETY: called first thing in `main`, before any other thread exists, so no
        // thread can be reading the environment concurrently.
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    }
}

/// "1 epoch", "5 epochs".
fn plural(count: usize, noun: &str) -> String {
    if count == 1 { format!("1 {noun}") } else { format!("{count} {noun}s") }
}

/// A clap error as one line: its lines joined, without the "try --help" advice.
fn one_line(rendered: &str) -> String {
    let lines =
        rendered.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("For more information"));
    lines.collect::<Vec<_>>().join(" ")
}

fn optimizer(recipe: &Recipe) -> Box<dyn Optimizer> {
    match recipe.optimizer {
        OptimizerChoice::Sgd => Box::new(
            Sgd::new(recipe.lr)
                .with_momentum(recipe.momentum)
                .with_nesterov(recipe.nesterov)
                .with_weight_decay(recipe.weight_decay),
        ),
        OptimizerChoice::Adam => Box::new(Adam::new(recipe.lr).with_weight_decay(recipe.weight_decay)),
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
    format!(
        "recipe {:?}: {}, batch {} ({sampling}), {:?} lr {} {:?} schedule, warmup {} epochs, momentum {}{}, weight decay {}, {output}, augment {:?}{}, {:?} init, seed {}",
        recipe.preset,
        plural(args.epochs, "epoch"),
        recipe.batch_size,
        recipe.optimizer,
        recipe.lr,
        recipe.schedule,
        recipe.warmup_epochs,
        recipe.momentum,
        if recipe.nesterov { " (Nesterov)" } else { "" },
        recipe.weight_decay,
        recipe.augment,
        if recipe.normalize { ", normalized inputs" } else { "" },
        recipe.init,
        args.seed
    )
    .to_lowercase()
}

/// How a command that did not fail ended.
enum Outcome {
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
            args.checkpoint.display()
        )),
    }
}

/// The trainer's settings from the flags and the recipe.
fn train_config(args: &Args, recipe: &Recipe) -> TrainConfig {
    TrainConfig {
        epochs: args.epochs,
        batch_size: recipe.batch_size,
        seed: args.seed,
        checkpoint: args.checkpoint.clone(),
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
fn test_images(test: Split, args: &Args, input: Option<Normalize>) -> ImageDataset {
    ImageDataset::new(test, args.image_size).with_normalize(input).with_class_names(&CLASS_NAMES)
}

/// The training images as the recipe samples, augments and standardizes them.
fn training_images(train: Split, args: &Args, recipe: &Recipe) -> ImageDataset {
    let order = match recipe.sampling {
        Sampling::Shuffle => Order::Shuffle,
        Sampling::Draws { draw } => Order::WithReplacement { draws: (train.len() / draw).max(1) * draw },
    };
    ImageDataset::new(train, args.image_size)
        .with_order(order)
        .with_augment(recipe.augment.augment())
        .with_normalize(recipe.input_normalization())
        .with_class_names(&CLASS_NAMES)
}

/// Runs the command. In a data-parallel run every process runs it; only rank 0 checks
/// and writes files and prints. `Err` is this process's own failure (in a
/// data-parallel run, the others may not have failed).
fn run(
    args: &Args,
    recipe: &Recipe,
    parallel: &DataParallel,
    signals: &StopSignals,
) -> Result<Outcome, String> {
    let root = parallel.is_root();
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
    let mut model = models::alexnet(&mut init, 1, 10, args.image_size).map_err(|err| err.to_string())?;
    parallel.broadcast_parameters(&mut model).map_err(|err| err.to_string())?;
    let input = Shape::from([1, args.image_size, args.image_size]);
    let summary = model.summary(&input).map_err(|err| err.to_string())?;
    if root {
        println!("AlexNet for 1×{0}×{0} Fashion-MNIST images\n{summary}", args.image_size);
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
            args.image_size
        );
    }

    let recipe_schedule = recipe.clone();
    let builder = Trainer::builder(
        model,
        training_images(train, args, recipe),
        test_images(test.clone(), args, recipe.input_normalization()),
    )
    .config(config)
    .optimizer(optimizer(recipe))
    .schedule(move |length| recipe_schedule.lr_schedule(length.epochs, length.steps_per_epoch))
    .loss(recipe.output)
    .device(&device)
    .data_parallel(parallel)
    .stop_flag(signals.stop.clone())
    .run_setting("image_size", args.image_size.to_string())
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
        let test = test_images(test, args, saved_input(&meta, args)?);
        let Some(evaluation) = trainer.evaluate_on(&test).map_err(|err| err.to_string())? else {
            return Ok(Outcome::Paused(interrupted_evaluation()));
        };
        if root {
            let Evaluation { score, confusion } = &evaluation;
            print!(
                "{}",
                final_report(confusion, &class_names, *score, Duration::ZERO, 0, memory::peak_rss_bytes())
            );
            if let Some(png) = &confusion_png {
                plots::confusion(png, confusion, &class_names)?;
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
                args.checkpoint.display(),
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
            let Evaluation { score, confusion } = &evaluation;
            print!(
                "{}",
                final_report(confusion, &class_names, *score, training, examples, memory::peak_rss_bytes())
            );
            if parallel.size() > 1 {
                let communication = parallel.communication_time().as_secs_f64();
                println!(
                    "communication (rank 0): {communication:.1} s in collectives, {:.1}% of the run's training time",
                    100.0 * communication / training.as_secs_f64().max(1e-9)
                );
            }
            if let (Some(png), Some(training_png)) = (&confusion_png, trainer.config().training_plot()) {
                plots::confusion(png, confusion, &class_names)?;
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
