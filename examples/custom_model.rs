//! Your own model and data with Kiln's trainer: a residual MLP (a `Module` written here)
//! on two spirals held in memory. `cargo run --release --example custom_model`

use kiln::data::TensorDataset;
use kiln::nn::{Adam, Dense, Initializer, Mode, Module, OneCycle, Result, Sequential};
use kiln::prelude::*;
use kiln::train::{Ending, StopSignals, Trainer};
use std::f32::consts::PI;

/// `x + dense2(relu(dense1(x)))`: the forward is any code; the children name the weights.
struct Residual(Dense, Dense);

impl Module for Residual {
    fn forward(&self, x: &Tensor, mode: Mode) -> Tensor {
        x.add(&self.1.forward(&self.0.forward(x, mode).relu(), mode))
    }
    fn output_shape(&self, input: &Shape) -> Result<Shape> {
        self.1.output_shape(&self.0.output_shape(input)?)
    }
    fn children(&self) -> Vec<(&str, &dyn Module)> {
        vec![("dense1", &self.0), ("dense2", &self.1)]
    }
    fn children_mut(&mut self) -> Vec<(&str, &mut dyn Module)> {
        vec![("dense1", &mut self.0), ("dense2", &mut self.1)]
    }
}

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    // 2,000 points on two spirals, labelled by spiral.
    let point = |i: usize, t: f32| {
        [(0.2 + t / 3.0) * (t + (i % 2) as f32 * PI).cos(), (0.2 + t / 3.0) * (t + (i % 2) as f32 * PI).sin()]
    };
    let points: Vec<[f32; 2]> = (0..2000).map(|i| point(i, i as f32 / 2000.0 * 3.0 * PI)).collect();
    let data = TensorDataset::new(points.concat(), [2], (0..2000).map(|i| i % 2).collect())?;
    let device = Device::cpu();
    let mut init = Initializer::new(&device, 1);
    let mut model = Sequential::new().push(Dense::new(&mut init, 2, 64));
    for _ in 0..2 {
        model = model.push(Residual(Dense::new(&mut init, 64, 64), Dense::new(&mut init, 64, 64)));
    }
    let model = model.push(Dense::new(&mut init, 64, 2));
    let mut trainer = Trainer::builder(model, data.clone().shuffled(), data)
        .epochs(40)
        .batch_size(50)
        .optimizer(Box::new(Adam::new(0.01)))
        .schedule(|length| OneCycle {
            max: 0.01,
            rise_steps: length.total_steps() / 5,
            steps: length.total_steps(),
        })
        .checkpoint("checkpoints/spirals.safetensors")
        .stop_flag(StopSignals::install()?.stop)
        .build()?;
    if let Ending::Finished(finished) = trainer.fit()? {
        println!("test accuracy {:.1}%", 100.0 * finished.last.map_or(0.0, |e| e.score.accuracy));
    }
    Ok(())
}
