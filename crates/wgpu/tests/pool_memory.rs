//! The buffer pool stops growing once a step has warmed it up. (Its own test binary, so
//! no other test allocates on the device meanwhile.)

mod common;

use common::gpu;
use kiln_nn::{
    Conv2d, Dense, Flatten, Initializer, MaxPool2d, Mode, Module, Optimizer, ReLU, Sequential, Sgd,
};
use kiln_tensor::Tensor;

#[test]
fn the_buffer_pool_is_stable_across_fifty_steps() {
    let Some(gpu) = gpu() else { return };
    let mut init = Initializer::new(&gpu, 1);
    let model = Sequential::new()
        .push(Conv2d::new(&mut init, 1, 4, 3).with_padding(1))
        .push(ReLU)
        .push(MaxPool2d::new(2, 2))
        .push(Flatten)
        .push(Dense::new(&mut init, 4 * 6 * 6, 3));
    let mut sgd = Sgd::new(0.05).with_momentum(0.9);
    let x = Tensor::randn([8, 1, 12, 12], 2, &gpu);
    let labels = Tensor::from_i32([8], vec![0, 1, 2, 0, 1, 2, 0, 1], &gpu);
    let mut after_warmup = None;
    let mut first_loss = 0.0;
    for step in 0..50 {
        let loss = model.forward(&x, Mode::train(step)).cross_entropy(&labels);
        let grads = loss.backward();
        sgd.step(&model, &grads);
        let value = loss.item().unwrap();
        if step == 0 {
            first_loss = value;
        }
        if step == 9 {
            after_warmup = Some(gpu.memory_in_use());
        }
    }
    assert_eq!(Some(gpu.memory_in_use()), after_warmup, "pool grew between step 10 and step 50");
    let last = model.forward(&x, Mode::Eval).cross_entropy(&labels).item().unwrap();
    assert!(last < first_loss, "training on the GPU lowers the loss: {first_loss} → {last}");
}
