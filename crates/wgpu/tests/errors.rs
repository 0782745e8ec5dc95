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
