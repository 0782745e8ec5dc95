//! A whole AlexNet training step on the GPU agrees with the CPU backend.

mod common;

use common::gpu;
use kiln_cpu::CpuDevice;
use kiln_nn::{Initializer, Mode, Module, Sequential, models};
use kiln_tensor::{Device, Tensor};

fn relative_error(a: &[f32], b: &[f32]) -> f64 {
    let diff: f64 = a.iter().zip(b).map(|(x, y)| f64::from(x - y).powi(2)).sum::<f64>().sqrt();
    let norm: f64 = b.iter().map(|y| f64::from(*y).powi(2)).sum::<f64>().sqrt();
    diff / norm.max(1e-30)
}

#[test]
fn alexnet_step_matches_the_cpu() {
    let Some(gpu) = gpu() else { return };
    let build = |device: &Device| models::alexnet(&mut Initializer::new(device, 5), 1, 10, 67).unwrap();
    let (cpu_model, gpu_model) = (build(&Device::cpu()), build(&gpu));
    let x = Tensor::rand_uniform([4, 1, 67, 67], 0.0..1.0, 6, &Device::cpu());
    let labels = Tensor::from_i32([4], vec![3, 1, 4, 1], &Device::cpu());
    // Evaluation mode: dropout off, so both backends compute the same function.
    let step = |model: &Sequential, device: &Device| {
        let loss = model
            .forward(&x.to_device(device).unwrap(), Mode::Eval)
            .cross_entropy(&labels.to_device(device).unwrap());
        let grads = loss.backward();
        let named: Vec<(String, Vec<f32>)> = model
            .named_parameters()
            .into_iter()
            .map(|(name, p)| (name, grads.get(&p).unwrap().to_vec().unwrap()))
            .collect();
        (loss.item().unwrap(), named)
    };
    let (cpu_loss, cpu_grads) = step(&cpu_model, &Device::cpu());
    let (gpu_loss, gpu_grads) = step(&gpu_model, &gpu);
    assert!(((gpu_loss - cpu_loss) / cpu_loss).abs() < 1e-3, "loss {gpu_loss} vs {cpu_loss}");
    assert_eq!(cpu_grads.len(), 16);
    for ((name, c), (_, g)) in cpu_grads.iter().zip(&gpu_grads) {
        let error = relative_error(g, c);
        assert!(error < 1e-3, "gradient of {name}: relative error {error:e}");
    }
}
