//! `alexnet-example`: trains the reference Keras notebook's AlexNet on Fashion-MNIST
//! with Kiln. Run `cargo run -p alexnet-example --release -- --help` for the flags.

mod args;
mod cluster;
mod device;
mod history;
mod limits;
mod memory;
mod plots;
mod recipe;
mod report;
mod signals;
mod train;

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use kiln_data::FashionMnist;
use kiln_dist::DataParallel;
use kiln_nn::{Adam, Init, Initializer, Module, Optimizer, Sgd, checkpoint, models};
use kiln_tensor::Shape;

use crate::args::{Args, InitChoice, OptimizerChoice};
use crate::recipe::{Output, Recipe, Sampling};
use crate::report::{final_report, open_metrics};
use crate::signals::StopSignals;
use crate::train::{Ending, Paused, Splits, Trainer, load_model};

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

/// Checks the files the run reads and writes before any expensive work: the
/// checkpoint to resume or evaluate exists, and every file the run may write (the
/// checkpoint, the best checkpoint beside it, the metrics, both plots) can be created
/// and is not a directory. An existing metrics file is not truncated here: that happens
/// only when training starts.
fn check_files(args: &Args) -> Result<(), String> {
    if (args.resume || args.eval_only) && !args.checkpoint.is_file() {
        let flag = if args.resume { "--resume" } else { "--eval-only" };
        return Err(format!(
            "{flag} needs the checkpoint {}, which does not exist; point --checkpoint at a saved one",
            args.checkpoint.display()
        ));
    }
    let writable = |path: &Path| checkpoint::ensure_writable(path).map_err(|err| err.to_string());
    if !args.eval_only {
        writable(&args.checkpoint)?;
        writable(&train::best_checkpoint_path(&args.checkpoint))?;
        if let Some(path) = &args.metrics {
            open_metrics(path, true)?;
        }
    }
    let plots = args.plots_dir();
    std::fs::create_dir_all(&plots)
        .map_err(|err| format!("cannot create the plots directory {}: {err}", plots.display()))?;
    let mut plot_files = vec![plots::CONFUSION_FILE];
    if !args.eval_only {
        plot_files.push(plots::TRAINING_FILE);
    }
    for file in plot_files {
        let path = plots.join(file);
        checkpoint::ensure_writable(&path)
            .map_err(|err| format!("--plots: cannot write {}: {}", path.display(), io_reason(&err)))?;
    }
    Ok(())
}

/// The underlying reason of a failed writability check, without the checkpoint wording.
fn io_reason(err: &kiln_nn::NnError) -> String {
    use std::error::Error;
    err.source().map(ToString::to_string).unwrap_or_else(|| err.to_string())
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
    if let Err(message) = parallel.rank0_check(|| check_files(args)) {
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

    let mut trainer =
        Trainer::new(args, recipe, parallel, device, model, optimizer(recipe), Splits { train, test });
    trainer.interrupted = signals.stop.clone();
    let confusion_png = args.plots_dir().join(plots::CONFUSION_FILE);
    let interrupted_evaluation =
        || Paused { message: "interrupted during evaluation: nothing to save".into(), interrupted: true };
    if args.eval_only {
        trainer.input = load_model(parallel, &args.checkpoint, &mut trainer.model)?;
        let Some((score, matrix)) = trainer.evaluate()? else {
            return Ok(Outcome::Paused(interrupted_evaluation()));
        };
        if root {
            print!("{}", final_report(&matrix, score, Duration::ZERO, 0, memory::peak_rss_bytes()));
            plots::confusion(&confusion_png, &matrix)?;
            println!("confusion matrix drawn in {}", confusion_png.display());
        }
        return Ok(Outcome::Done);
    }
    if args.resume {
        trainer.resume()?;
        let p = trainer.position;
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
    match trainer.train()? {
        Ending::Paused(paused) => Ok(Outcome::Paused(paused)),
        Ending::Diverged(message) => Ok(Outcome::Diverged(message)),
        Ending::Finished { training, images, last } => {
            let evaluation = match last {
                Some(evaluation) => evaluation,
                None => match trainer.evaluate()? {
                    Some(evaluation) => evaluation,
                    None => return Ok(Outcome::Paused(interrupted_evaluation())),
                },
            };
            let (score, matrix) = evaluation;
            if !root {
                return Ok(Outcome::Done);
            }
            print!("{}", final_report(&matrix, score, training, images, memory::peak_rss_bytes()));
            if parallel.size() > 1 {
                let communication = parallel.communication_time().as_secs_f64();
                println!(
                    "communication (rank 0): {communication:.1} s in collectives, {:.1}% of the run's training time",
                    100.0 * communication / training.as_secs_f64().max(1e-9)
                );
            }
            plots::confusion(&confusion_png, &matrix)?;
            let plots_dir = args.plots_dir();
            println!(
                "plots: {} and {}",
                plots_dir.join(plots::TRAINING_FILE).display(),
                confusion_png.display()
            );
            if let Some(best) = trainer.history.best() {
                println!(
                    "best checkpoint: {} (epoch {}, test accuracy {:.2}%)",
                    trainer.best_checkpoint_path().display(),
                    best.epoch,
                    100.0 * best.test.accuracy
                );
            }
            Ok(Outcome::Done)
        }
    }
}
