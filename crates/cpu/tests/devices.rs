//! Independent CPU devices: each owns its thread pool and its memory. Two devices with
//! the same thread count compute bit-identical results, and with different thread
//! counts the same forward pass and gradients equal up to summation order (weight
//! gradients add per-task partial sums, and tasks follow the thread count); neither
//! device sees the other's tensors in its byte counts or buffer cache; and a device
//! works the same when called from inside a program's own rayon pool.

use kiln_cpu::CpuDevice;
use kiln_tensor::{Device, Normal, Tensor};

/// A small convolution + dense step's loss and weight gradients on `device`.
fn step(device: &Device) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let x = Tensor::randn([6, 3, 13, 11], 1, device);
    let w = Tensor::normal([20, 3, 3, 3], Normal { mean: 0.0, std: 0.2 }, 2, device).with_requires_grad();
    let dense =
        Tensor::normal([5, 20 * 13 * 11], Normal { mean: 0.0, std: 0.05 }, 3, device).with_requires_grad();
    let labels = Tensor::from_i32([6], vec![0, 1, 2, 3, 4, 0], device);
    let loss =
        x.conv2d(&w, None, 1, 1).relu().flatten(1).matmul_with(&dense, false, true).cross_entropy(&labels);
    let grads = loss.backward();
    (
        loss.to_vec().unwrap(),
        grads.get(&w).unwrap().to_vec().unwrap(),
        grads.get(&dense).unwrap().to_vec().unwrap(),
    )
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

/// Asserts `a` and `b` agree within float32 summation-order differences.
fn assert_close(what: &str, a: &[f32], b: &[f32]) {
    let scale = a.iter().map(|v| v.abs()).fold(0.0f32, f32::max);
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= 1e-5 * scale, "{what} {i}: {x} vs {y}");
    }
}

#[test]
fn devices_with_their_own_pools_agree() {
    let one = Device::cpu_with_threads(1).unwrap();
    let three = Device::cpu_with_threads(3).unwrap();
    let another_three = Device::cpu_with_threads(3).unwrap();
    assert_eq!(one.cpu_backend().unwrap().threads(), 1);
    assert_eq!(three.cpu_backend().unwrap().threads(), 3);
    assert!(one.name().contains("(1 thread,") && three.name().contains("(3 threads,"), "{}", three.name());
    let (a, b, c) = (step(&one), step(&three), step(&another_three));
    assert_eq!(bits(&b.0), bits(&c.0), "same thread count: identical loss");
    assert_eq!(bits(&b.1), bits(&c.1), "same thread count: identical convolution gradient");
    assert_eq!(bits(&b.2), bits(&c.2), "same thread count: identical dense gradient");
    assert_eq!(bits(&a.0), bits(&b.0), "the forward pass does not depend on the thread count");
    assert_close("convolution weight gradient", &a.1, &b.1);
    assert_close("dense weight gradient", &a.2, &b.2);
}

#[test]
fn each_device_counts_and_caches_only_its_own_memory() {
    let (first, second) = (Device::cpu_with_threads(2).unwrap(), Device::cpu_with_threads(2).unwrap());
    let (a, b) = (first.cpu_backend().unwrap().memory(), second.cpu_backend().unwrap().memory());
    let len = 1 << 18;
    let tensor = Tensor::full([len], 1.0, &first);
    assert_eq!(a.live_bytes(), len * 4);
    assert_eq!(b.live_bytes(), 0, "the other device holds nothing");
    drop(tensor);
    assert_eq!((a.cached_bytes(), b.cached_bytes()), (len * 4, 0), "only the owner caches the buffer");
    let reuse = Tensor::zeros([len], &second);
    assert_eq!(a.cached_bytes(), len * 4, "another device does not take the owner's buffer");
    drop(reuse);
    a.release_cached_memory();
    assert_eq!(a.cached_bytes(), 0);
}

#[test]
fn a_device_runs_the_same_inside_a_programs_own_rayon_pool() {
    let device = Device::cpu_with_threads(2).unwrap();
    let outside = step(&device);
    let program_pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let inside = program_pool.install(|| {
        assert_eq!(device.cpu_backend().unwrap().threads(), 2, "the device keeps its own pool");
        step(&device)
    });
    assert_eq!(bits(&outside.0), bits(&inside.0));
    assert_eq!(bits(&outside.1), bits(&inside.1));
}
