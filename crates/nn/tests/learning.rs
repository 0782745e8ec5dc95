//! A small CNN built from the layers learns a synthetic image task: which quadrant of a
//! noisy 12×12 image holds a bright 3×3 square.

use kiln_cpu::CpuDevice;
use kiln_nn::{
    Conv2d, Dense, Flatten, Initializer, MaxPool2d, Mode, Module, Optimizer, ReLU, Sequential, Sgd, metrics,
};
use kiln_tensor::{Device, Rng, Tensor};

/// `n` images `[n, 1, 12, 12]` and their quadrant labels.
fn quadrant_images(n: usize, seed: u64) -> (Tensor, Tensor) {
    let mut rng = Rng::new(seed);
    let mut pixels = vec![0.0f32; n * 144];
    let mut labels = Vec::with_capacity(n);
    for (i, image) in pixels.chunks_mut(144).enumerate() {
        image.iter_mut().for_each(|p| *p = 0.3 * rng.next_f32());
        let quadrant = i % 4;
        let (top, left) = (6 * (quadrant / 2) + rng.below(4), 6 * (quadrant % 2) + rng.below(4));
        for y in top..top + 3 {
            for x in left..left + 3 {
                image[y * 12 + x] = 1.0;
            }
        }
        labels.push(quadrant as i32);
    }
    let device = Device::cpu();
    (Tensor::from_vec([n, 1, 12, 12], pixels, &device), Tensor::from_i32([n], labels, &device))
}

#[test]
fn small_cnn_learns_which_quadrant_is_bright() {
    let mut init = Initializer::new(&Device::cpu(), 7);
    let model = Sequential::new()
        .push(Conv2d::new(&mut init, 1, 6, 3).with_padding(1))
        .push(ReLU)
        .push(MaxPool2d::new(2, 2))
        .push(Flatten)
        .push(Dense::new(&mut init, 6 * 6 * 6, 4));
    let mut sgd = Sgd::new(0.05).with_momentum(0.9);
    for step in 0..120 {
        let (x, y) = quadrant_images(32, step);
        let grads = model.forward(&x, Mode::train(step)).cross_entropy(&y).backward();
        sgd.step(&model, &grads);
    }
    let (x, y) = quadrant_images(400, 10_000);
    let accuracy = metrics::accuracy(&model.forward(&x, Mode::Eval), &y).unwrap();
    assert!(accuracy > 0.95, "test accuracy {accuracy}");
}

#[test]
fn confusion_matrix_counts_and_per_class_accuracy() {
    let device = Device::cpu();
    let logits = Tensor::from_vec([4, 3], vec![9., 0., 0., 0., 9., 0., 9., 0., 0., 0., 0., 9.], &device);
    let labels = Tensor::from_i32([4], vec![0, 1, 1, 2], &device);
    let mut matrix = kiln_nn::ConfusionMatrix::new(3);
    matrix.add_batch(&logits, &labels).unwrap();
    assert_eq!(matrix.count(1, 0), 1);
    assert_eq!(matrix.count(1, 1), 1);
    assert_eq!(matrix.total(), 4);
    assert_eq!(matrix.accuracy(), 0.75);
    assert_eq!(matrix.class_accuracy(1), Some(0.5));
    assert!(matrix.render(&["a", "b", "c"]).contains("predicted"));
    assert_eq!(metrics::accuracy(&logits, &labels).unwrap(), 0.75);
}
