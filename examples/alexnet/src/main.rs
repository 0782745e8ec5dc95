//! `alexnet-example`: trains the reference Keras notebook's AlexNet on Fashion-MNIST
//! with Kiln. Run `cargo run -p alexnet-example --release -- --help` for the flags.

mod args;
mod device;
mod memory;
mod report;
mod train;

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::Parser;
use kiln_data::FashionMnist;
use kiln_nn::{Adam, Init, Initializer, Module, Optimizer, Sgd, models};
use kiln_tensor::Shape;

use crate::args::{Args, InitChoice, OptimizerChoice};
use crate::report::final_report;
use crate::train::{Ending, Paused, Trainer, load_model};

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(err) if !err.use_stderr() => {
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("{}", one_line(&err.render().to_string()));
            return ExitCode::from(2);
        }
    };
    if let Err(message) = args.validate() {
        eprintln!("error: {message}");
        return ExitCode::from(2);
    }
    match run(&args) {
        Ok(None) => ExitCode::SUCCESS,
        Ok(Some(Paused { message, interrupted })) => {
            eprintln!("{message}");
            ExitCode::from(if interrupted { 130 } else { 0 })
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// A clap error as one line: its lines joined, without the "try --help" advice.
fn one_line(rendered: &str) -> String {
    let lines =
        rendered.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("For more information"));
    lines.collect::<Vec<_>>().join(" ")
}

fn optimizer(args: &Args) -> Box<dyn Optimizer> {
    match args.optimizer {
        OptimizerChoice::Sgd => {
            Box::new(Sgd::new(args.lr).with_momentum(args.momentum).with_weight_decay(args.weight_decay))
        }
        OptimizerChoice::Adam => Box::new(Adam::new(args.lr).with_weight_decay(args.weight_decay)),
    }
}

/// Runs the command; `Ok(Some(..))` when training paused early with a checkpoint.
fn run(args: &Args) -> Result<Option<Paused>, String> {
    let (device, device_line) = device::pick(args.backend, args.threads)?;
    let scheme = match args.init {
        InitChoice::Glorot => Init::GlorotUniform,
        InitChoice::He => Init::HeUniform,
    };
    let mut init = Initializer::new(&device, args.seed).with_scheme(scheme);
    let model = models::alexnet(&mut init, 1, 10, args.image_size).map_err(|err| err.to_string())?;
    let input = Shape::from([1, args.image_size, args.image_size]);
    let summary = model.summary(&input).map_err(|err| err.to_string())?;
    println!("AlexNet for 1×{0}×{0} Fashion-MNIST images\n{summary}", args.image_size);
    println!("device: {device_line}");

    let data = FashionMnist::load(args.data_dir.as_deref()).map_err(|err| err.to_string())?;
    let train = data.train.limit(args.train_limit.unwrap_or(usize::MAX));
    let test = data.test.limit(args.test_limit.unwrap_or(usize::MAX));
    println!(
        "data: {} ({} training images, {} test images, resized 28→{})",
        data.dir.display(),
        train.len(),
        test.len(),
        args.image_size
    );

    let mut trainer = Trainer::new(args, device, model, optimizer(args), train, test);
    if args.eval_only {
        load_model(&args.checkpoint, &mut trainer.model)?;
        let (score, matrix) = trainer.evaluate()?;
        print!("{}", final_report(&matrix, score, Duration::ZERO, 0, memory::peak_rss_bytes()));
        return Ok(None);
    }
    if args.resume {
        trainer.resume()?;
        let p = trainer.position;
        println!(
            "resuming from {} at epoch {}, batch {} (step {})",
            args.checkpoint.display(),
            p.epoch + 1,
            p.batch,
            p.step
        );
    }
    let flag = trainer.interrupted.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))
        .map_err(|err| format!("cannot install the Ctrl-C handler: {err}"))?;
    println!(
        "training: {} epochs, batch {}, {:?} lr {} momentum {} weight decay {}, {:?} init, seed {}",
        args.epochs,
        args.batch_size,
        args.optimizer,
        args.lr,
        args.momentum,
        args.weight_decay,
        args.init,
        args.seed
    );
    match trainer.train()? {
        Ending::Paused(paused) => Ok(Some(paused)),
        Ending::Finished { training, images } => {
            let (score, matrix) = trainer.evaluate()?;
            print!("{}", final_report(&matrix, score, training, images, memory::peak_rss_bytes()));
            Ok(None)
        }
    }
}
