//! The README's training loop: a small CNN on Fashion-MNIST with the kiln facade
//! (its default `data` feature brings in kiln-data).
//! `cargo run --release --example fashion_cnn`

use kiln::data::{BatchConfig, FashionMnist, Pass, Prefetcher};
use kiln::nn::{
    Conv2d, Dense, Flatten, Initializer, MaxPool2d, Mode, Module, Optimizer, ReLU, Sequential, Sgd, metrics,
};
use kiln::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let device = Device::cpu();
    let data = FashionMnist::load(None)?; // finds or downloads the dataset
    let mut init = Initializer::new(&device, 42);
    let model = Sequential::new()
        .push(Conv2d::new(&mut init, 1, 16, 3).with_padding(1))
        .push(ReLU)
        .push(MaxPool2d::new(2, 2))
        .push(Flatten)
        .push(Dense::new(&mut init, 16 * 14 * 14, 10));
    let mut sgd = Sgd::new(0.05).with_momentum(0.9);
    let config = BatchConfig::shuffled(64, 28).with_seed(42);
    for epoch in 0..2 {
        for (step, batch) in Prefetcher::new(&data.train, &config, Pass::epoch(epoch)).enumerate() {
            let (x, y) = batch.into_tensors(&device);
            let grads = model.forward(&x, Mode::train(step as u64)).cross_entropy(&y).backward();
            sgd.step(&model, &grads);
        }
        let (x, y) = Prefetcher::new(&data.test, &BatchConfig::in_order(64, 28), Pass::epoch(0).workers(1))
            .next()
            .unwrap()
            .into_tensors(&device);
        println!(
            "epoch {epoch}: test accuracy {:.3}",
            metrics::accuracy(&no_grad(|| model.forward(&x, Mode::Eval)), &y)?
        );
    }
    kiln::nn::checkpoint::save("cnn.safetensors".as_ref(), &model, Some(&sgd), &Default::default())?;
    Ok(())
}
