//! `Sequential` runs a convolution or a dense layer and the ReLU after it as one fused
//! op, and a dense layer, ReLU and dropout in training as one too: the output and every
//! gradient equal those of the separate layers, bit for bit, while a ReLU after a layer
//! without a fused form still runs on its own.

use kiln_cpu::CpuDevice;
use kiln_nn::{Conv2d, Dense, Dropout, Flatten, Initializer, Mode, Module, ReLU, Sequential};
use kiln_tensor::{Device, Tensor};

fn bits(t: &Tensor) -> Vec<u32> {
    t.to_vec().unwrap().iter().map(|v| v.to_bits()).collect()
}

/// Asserts `fused` (the output of `model`) equals `unfused` (computed from `separate`,
/// the same layer with the same weights) bit for bit, with some outputs clipped by the
/// ReLU, and that the parameters of both get bit-identical gradients.
fn assert_same_values_and_gradients(
    fused: &Tensor,
    unfused: &Tensor,
    model: &dyn Module,
    separate: &dyn Module,
) {
    assert_eq!(bits(fused), bits(unfused));
    assert!(fused.to_vec().unwrap().contains(&0.0), "some outputs are clipped");
    assert!(fused.to_vec().unwrap().iter().any(|&v| v > 0.0), "some outputs pass");
    let weights = Tensor::randn(fused.dims().to_vec(), 5, fused.device());
    let fused_grads = fused.mul(&weights).sum().backward();
    let unfused_grads = unfused.mul(&weights).sum().backward();
    let pairs = model.named_parameters().into_iter().zip(separate.named_parameters());
    for ((name, fused_param), (_, separate_param)) in pairs {
        let (a, b) = (fused_grads.get(&fused_param).unwrap(), unfused_grads.get(&separate_param).unwrap());
        assert_eq!(bits(a), bits(b), "gradient of {name}");
    }
}

#[test]
fn a_convolution_and_its_relu_fuse_without_changing_any_value() {
    let device = Device::cpu();
    let conv = || Conv2d::new(&mut Initializer::new(&device, 3), 3, 20, 3).with_padding(1);
    let (separate, model) = (conv(), Sequential::new().push(conv()).push(ReLU).push(Flatten).push(ReLU));
    let x = Tensor::randn([4, 3, 9, 8], 4, &device);

    let fused = model.forward(&x, Mode::Eval);
    let unfused = ReLU.forward(&separate.forward(&x, Mode::Eval), Mode::Eval).flatten(1).relu();
    assert_same_values_and_gradients(&fused, &unfused, &model, &separate);
}

#[test]
fn a_dense_layer_and_its_relu_fuse_without_changing_any_value() {
    let device = Device::cpu();
    let dense = || Dense::new(&mut Initializer::new(&device, 6), 30, 17);
    let (separate, model) = (dense(), Sequential::new().push(dense()).push(ReLU));
    let x = Tensor::randn([9, 30], 7, &device);
    let fused = model.forward(&x, Mode::Eval);
    let unfused = x.matmul_with(separate.weight(), false, true).add(separate.bias().unwrap()).relu();
    assert_same_values_and_gradients(&fused, &unfused, &model, &separate);
}

#[test]
fn a_dense_layer_its_relu_and_dropout_fuse_in_training_without_changing_any_value() {
    let device = Device::cpu();
    let dense = || Dense::new(&mut Initializer::new(&device, 6), 30, 17);
    let (separate, model) = (dense(), Sequential::new().push(dense()).push(ReLU).push(Dropout::new(0.4)));
    let x = Tensor::randn([9, 30], 7, &device);
    let unfused_relu = || x.matmul_with(separate.weight(), false, true).add(separate.bias().unwrap()).relu();
    // A shard's window (first sample 5 of the global batch) checks the mask's offset.
    for mode in [Mode::train(11), Mode::train(12).with_first_sample(5)] {
        let fused = model.forward(&x, mode);
        let unfused = Dropout::new(0.4).forward(&unfused_relu(), mode.child(2));
        assert_same_values_and_gradients(&fused, &unfused, &model, &separate);
        let kept = fused.to_vec().unwrap().iter().filter(|&&v| v > 0.0).count();
        let passed = unfused_relu().to_vec().unwrap().iter().filter(|&&v| v > 0.0).count();
        assert!(kept < passed, "dropout zeroed some of the ReLU's {passed} positive outputs");
    }
    // In evaluation dropout is the identity: dense + ReLU only.
    let fused = model.forward(&x, Mode::Eval);
    assert_same_values_and_gradients(&fused, &unfused_relu(), &model, &separate);
}
