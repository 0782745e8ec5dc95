//! `alexnet-example`: trains the reference Keras notebook's AlexNet (or a ResNet-18 or
//! a Vision Transformer) on Fashion-MNIST with Kiln: the flags, the processes, the
//! signals and the exit status; `run` does the work. Run
//! `cargo run -p alexnet-example --release -- --help` for the flags.

mod args;
mod cluster;
mod device;
mod limits;
mod recipe;
mod run;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use kiln_dist::DataParallel;
use kiln_train::{Paused, StopSignals};

use crate::args::Args;
use crate::run::{Outcome, run};

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

/// A clap error as one line: its lines joined, without the "try --help" advice.
fn one_line(rendered: &str) -> String {
    let lines =
        rendered.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("For more information"));
    lines.collect::<Vec<_>>().join(" ")
}
