//! `DataParallel` on one process: the share weighting, the bucketing (any bucket size
//! gives the same gradients), missing gradients as zeros, and the batch check.

use kiln_cpu::CpuDevice;
use kiln_dist::{DataParallel, DistError, SingleProcess};
use kiln_nn::{Dense, Initializer, Mode, Module, Sequential};
use kiln_tensor::{Device, Gradients, Tensor};

fn model_and_grads(device: &Device) -> (Sequential, Gradients) {
    let mut init = Initializer::new(device, 3);
    let model = Sequential::new().push(Dense::new(&mut init, 5, 7)).push(Dense::new(&mut init, 7, 3));
    let x = Tensor::randn([6, 5], 4, device);
    let labels = Tensor::from_i32([6], vec![0, 1, 2, 0, 1, 2], device);
    let grads = model.forward(&x, Mode::train(1)).cross_entropy(&labels).backward();
    (model, grads)
}

fn gradient_values(model: &Sequential, grads: &Gradients) -> Vec<Vec<f32>> {
    model.named_parameters().iter().map(|(_, p)| grads.get(p).unwrap().to_vec().unwrap()).collect()
}

#[test]
fn a_share_scales_the_gradients_whatever_the_bucket_size() {
    let device = Device::cpu();
    let (model, grads) = model_and_grads(&device);
    let plain = gradient_values(&model, &grads);
    for bucket_bytes in [4, 100, 1 << 20] {
        let (model, mut grads) = model_and_grads(&device);
        let parallel = DataParallel::new(Box::new(SingleProcess)).with_bucket_bytes(bucket_bytes);
        parallel.average_gradients(&model, &mut grads, 0.25).unwrap();
        let scaled = gradient_values(&model, &grads);
        for (want, got) in plain.iter().zip(&scaled) {
            let want: Vec<f32> = want.iter().map(|g| g * 0.25).collect();
            assert_eq!(&want, got, "bucket of {bucket_bytes} bytes");
        }
    }
}

#[test]
fn a_parameter_without_a_gradient_gets_zeros() {
    let device = Device::cpu();
    let (model, mut grads) = model_and_grads(&device);
    let params = model.named_parameters();
    grads.remove(&params[0].1);
    DataParallel::new(Box::new(SingleProcess)).average_gradients(&model, &mut grads, 0.5).unwrap();
    let zeros = grads.get(&params[0].1).expect("a zero gradient was inserted").to_vec().unwrap();
    assert!(zeros.iter().all(|&g| g == 0.0));
    assert_eq!(grads.len(), params.len());
}

#[test]
fn one_process_keeps_its_parameters_and_any_batch_size() {
    let device = Device::cpu();
    let (mut model, _) = model_and_grads(&device);
    let before: Vec<Vec<f32>> = model.named_parameters().iter().map(|(_, p)| p.to_vec().unwrap()).collect();
    let parallel = DataParallel::new(Box::new(SingleProcess));
    parallel.broadcast_parameters(&mut model).unwrap();
    let after: Vec<Vec<f32>> = model.named_parameters().iter().map(|(_, p)| p.to_vec().unwrap()).collect();
    assert_eq!(before, after);
    assert!(parallel.is_root() && parallel.size() == 1);
    assert_eq!(parallel.check_batch_size(7), Ok(()));
}

#[test]
fn an_uneven_batch_is_a_one_line_error() {
    let error = DistError::IndivisibleBatch { batch: 100, processes: 3 };
    let text = error.to_string();
    assert!(text.contains("100") && text.contains("3 processes") && !text.contains('\n'), "{text}");
}
