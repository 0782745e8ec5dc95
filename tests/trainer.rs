//! The trainer as a library on every device: a run paused by `max_steps` and resumed
//! ends with the checkpoint an uninterrupted run writes, byte for byte; the stop flag
//! pauses with a checkpoint; a diverging run names the last good checkpoint; settings
//! and files that cannot work are refused before any step.

#[macro_use]
mod common;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use kiln::data::TensorDataset;
use kiln::nn::{Dense, Initializer, Module, ReLU, Sequential, Sgd};
use kiln::prelude::*;
use kiln::train::{Ending, PlotsDir, TrainError, Trainer, TrainerBuilder};

/// 96 points in 3 clusters of 4 features (class = cluster), 72 to train on.
fn clusters() -> (TensorDataset, TensorDataset) {
    let example = |i: usize| {
        (0..4).map(move |f| {
            ((i % 3) as f32 - 1.0) * (1.0 + f as f32 / 4.0) + ((i * 7 + f * 3) % 11) as f32 / 22.0
        })
    };
    let inputs: Vec<f32> = (0..96).flat_map(example).collect();
    let labels: Vec<i32> = (0..96).map(|i| i % 3).collect();
    let train = TensorDataset::new(inputs[..72 * 4].to_vec(), [4], labels[..72].to_vec()).unwrap();
    (train.shuffled(), TensorDataset::new(inputs[72 * 4..].to_vec(), [4], labels[72..].to_vec()).unwrap())
}

fn mlp(device: &Device) -> Sequential {
    let mut init = Initializer::new(device, 5);
    Sequential::new().push(Dense::new(&mut init, 4, 16)).push(ReLU).push(Dense::new(&mut init, 16, 3))
}

/// A quiet trainer of a fresh MLP writing `checkpoint`, 3 epochs of batches of 16.
fn builder(device: &Device, checkpoint: &std::path::Path, lr: f32) -> TrainerBuilder<'static, Sequential> {
    let (train, test) = clusters();
    Trainer::builder(mlp(device), train, test)
        .epochs(3)
        .batch_size(16)
        .seed(9)
        .optimizer(Box::new(Sgd::new(lr).with_momentum(0.9)))
        .checkpoint(checkpoint)
        .plots(PlotsDir::Off)
        .progress(false)
}

/// The checkpoint's tensors by name.
fn tensors(path: &std::path::Path) -> Vec<(String, Vec<f32>)> {
    let mut model = mlp(&Device::cpu());
    kiln::nn::checkpoint::load(path, &mut model, None).unwrap();
    model.named_parameters().into_iter().map(|(n, t)| (n, t.to_vec().unwrap())).collect()
}

test_on_every_device! {
    fn a_paused_and_resumed_run_ends_where_a_straight_one_does(device: &Device) {
        let dir = tempfile::tempdir().unwrap();
        let (straight, split) = (dir.path().join("straight.safetensors"), dir.path().join("split.safetensors"));
        let mut trainer = builder(device, &straight, 0.05).build().unwrap();
        let Ending::Finished(done) = trainer.fit().unwrap() else { panic!("the straight run finished") };
        assert!(done.last.unwrap().score.accuracy > 0.9, "the clusters are learned");
        assert_eq!(trainer.history().epochs.len(), 3);

        let mut first = builder(device, &split, 0.05).max_steps(7).build().unwrap();
        let Ending::Paused(paused) = first.fit().unwrap() else { panic!("max_steps pauses") };
        assert!(paused.message.contains("step 7") && !paused.interrupted, "{}", paused.message);
        let mut second = builder(device, &split, 0.05).resume(true).build().unwrap();
        assert_eq!((second.position().epoch, second.position().batch, second.position().step), (1, 2, 7));
        assert!(matches!(second.fit().unwrap(), Ending::Finished(_)));
        assert_eq!(tensors(&straight), tensors(&split), "the resumed run ends with the same weights");
        assert!(dir.path().join("split-best.safetensors").is_file());
    }

    fn the_stop_flag_pauses_and_divergence_names_the_good_checkpoint(device: &Device) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.safetensors");
        let stop = Arc::new(AtomicBool::new(true));
        let mut trainer = builder(device, &path, 0.05).stop_flag(stop).build().unwrap();
        let Ending::Paused(paused) = trainer.fit().unwrap() else { panic!("the flag pauses") };
        assert!(paused.interrupted && paused.message.starts_with("interrupted: checkpoint saved"), "{}", paused.message);
        assert!(path.is_file());

        let mut wild = builder(device, &dir.path().join("wild.safetensors"), 1e4).checkpoint_every(1).build().unwrap();
        let Ending::Diverged(message) = wild.fit().unwrap() else { panic!("lr 1e4 diverges") };
        assert!(message.contains("the loss became") && message.contains("Try a lower --lr"), "{message}");
    }

    fn impossible_settings_and_files_are_refused_before_any_step(device: &Device) {
        let dir = tempfile::tempdir().unwrap();
        let refused = |builder: TrainerBuilder<'static, Sequential>| match builder.build() {
            Err(TrainError::Refused(message)) => message,
            Err(other) => panic!("refused, not {other}"),
            Ok(_) => panic!("refused"),
        };
        assert!(refused(builder(device, &dir.path().join("a"), 0.1).batch_size(0)).contains("batch size must be at least 1"));
        let message = refused(builder(device, dir.path(), 0.1));
        assert!(message.contains(&dir.path().display().to_string()), "a directory as checkpoint: {message}");
        let message = refused(builder(device, &dir.path().join("none.safetensors"), 0.1).resume(true));
        assert!(message.contains("--resume needs the checkpoint"), "{message}");

        let saved = dir.path().join("b.safetensors");
        let mut trainer = builder(device, &saved, 0.05).max_steps(1).build().unwrap();
        trainer.fit().unwrap();
        match builder(device, &saved, 0.05).batch_size(8).resume(true).build() {
            Err(TrainError::Failed(message)) => assert!(message.contains("batch_size = 16, this run has 8"), "{message}"),
            _ => panic!("another batch size cannot resume"),
        }
    }
}
