//! GPU errors surface as `Result`s naming the op, and the device stays usable. (Its own
//! test binary: errors are collected per device, and the other tests share theirs.)

mod common;

use common::gpu;
use kiln_tensor::Tensor;

#[test]
fn a_tensor_beyond_the_binding_limit_is_a_result_error() {
    let Some(gpu) = gpu() else { return };
    let (_, summary) = kiln_wgpu::shared().unwrap();
    let too_many = (summary.max_binding_bytes / 4 + 1) as usize;
    let huge = Tensor::full([too_many], 1.0, &gpu);
    let err = gpu.synchronize().unwrap_err().to_string();
    assert!(err.contains("full: a tensor of") && err.contains("largest storage binding"), "{err}");
    drop(huge);
    assert!(gpu.synchronize().is_ok(), "the error is reported once; the device stays usable");
    assert_eq!(Tensor::full([3], 1.0, &gpu).to_vec().unwrap(), vec![1.0; 3]);
}

#[test]
fn tuning_leaves_an_earlier_error_for_the_user_to_see() {
    if gpu().is_none() {
        return;
    }
    let cache = std::env::temp_dir().join(format!("kiln-autotune-errors-{}.tsv", std::process::id()));
    let (device, summary) =
        kiln_wgpu::open_with(kiln_wgpu::Autotune::On { cache: Some(cache.clone()) }).unwrap();
    let too_many = (summary.max_binding_bytes / 4 + 1) as usize;
    let huge = Tensor::full([too_many], 1.0, &device);
    // The first product of this shape tunes, waiting for the GPU several times.
    let (a, b) = (Tensor::ones([37, 29], &device), Tensor::ones([29, 41], &device));
    let product = a.matmul(&b);
    let err = device.synchronize().unwrap_err().to_string();
    assert!(err.contains("full: a tensor of"), "the error before tuning still surfaces: {err}");
    assert_eq!(product.to_vec().unwrap(), vec![29.0; 37 * 41]);
    drop(huge);
    let _ = std::fs::remove_file(cache);
}
