//! The CPU buffer cache, seen from the public API: a large tensor's memory is kept when
//! it is dropped, the next tensor of that size takes it (zeroed when asked for zeros),
//! caching never holds more than the peak of live tensors allows, and
//! `release_cached_memory` empties it. One test, so nothing else in this process
//! allocates meanwhile.

use kiln_cpu::CpuDevice;
use kiln_tensor::{Device, Tensor};

#[test]
fn large_buffers_are_reused_within_the_peak_and_released() {
    let device = Device::cpu();
    let memory = device.cpu_backend().expect("a CPU device").memory();
    let cached_bytes = || memory.cached_bytes();
    let live_bytes = || memory.live_bytes();
    let peak_live_bytes = || memory.peak_live_bytes();
    let release_cached_memory = || memory.release_cached_memory();
    let len = 1 << 18;
    let first = Tensor::full([len], 3.0, &device);
    let peak = peak_live_bytes();
    assert!(peak >= len * 4);
    drop(first);
    assert_eq!(cached_bytes(), len * 4, "the dropped tensor's buffer is cached");

    let zeros = Tensor::zeros([len], &device);
    assert_eq!(cached_bytes(), 0, "the next tensor of that size takes the cached buffer");
    assert!(zeros.to_vec().unwrap().iter().all(|v| *v == 0.0), "a reused buffer is cleared");

    let other = Tensor::full([len / 2], 1.0, &device);
    drop(zeros);
    assert!(
        live_bytes() + cached_bytes() <= peak_live_bytes(),
        "cache plus live tensors stay under the peak"
    );
    drop(other);
    assert!(cached_bytes() > 0);
    release_cached_memory();
    assert_eq!(cached_bytes(), 0);
}
