//! A batch split into shards (one per process of a data-parallel run) computes what the
//! whole batch computes, dropout included: each shard's `Mode` names its first sample.

use kiln_cpu::CpuDevice;
use kiln_nn::models::alexnet;
use kiln_nn::{Initializer, Mode, Module};
use kiln_tensor::{Device, Tensor};

#[test]
fn shards_of_a_batch_give_the_whole_batch_outputs_and_dropout_masks() {
    let device = Device::cpu();
    let model = alexnet(&mut Initializer::new(&device, 5), 1, 10, 67).unwrap();
    let whole = Tensor::randn([4, 1, 67, 67], 9, &device);
    let mode = Mode::train(77);
    let expected = model.forward(&whole, mode).to_vec().unwrap();
    let host = whole.to_vec().unwrap();
    let per_image = 67 * 67;
    let shard = |first: usize, count: usize| {
        let x = Tensor::from_vec(
            [count, 1, 67, 67],
            host[first * per_image..(first + count) * per_image].to_vec(),
            &device,
        );
        model.forward(&x, mode.with_first_sample(first as u64)).to_vec().unwrap()
    };
    let mut sharded = shard(0, 2);
    sharded.extend(shard(2, 2));
    let worst = expected.iter().zip(&sharded).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(worst < 1e-5, "sharded logits differ from the whole batch's by {worst}");
    let unshifted = shard_without_offset(&model, &host[2 * per_image..], &device);
    assert!(
        unshifted.iter().zip(&expected[20..]).any(|(a, b)| (a - b).abs() > 1e-3),
        "the shard's masks must depend on its first sample"
    );
}

fn shard_without_offset(model: &impl Module, pixels: &[f32], device: &Device) -> Vec<f32> {
    let x = Tensor::from_vec([2, 1, 67, 67], pixels.to_vec(), device);
    model.forward(&x, Mode::train(77)).to_vec().unwrap()
}
