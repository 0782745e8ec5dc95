//! The CPU buffer cache, seen from the public API: a large tensor's memory is kept when
//! it is dropped, the next tensor of that size (or a little smaller) takes it (zeroed when
//! asked for zeros) without a fresh allocation, caching never holds more than the peak
//! of held memory plus the set headroom allows, and
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
    let peak_bytes = || memory.peak_bytes();
    let release_cached_memory = || memory.release_cached_memory();
    memory.set_cache_headroom_percent(0);
    let len = 1 << 18;
    let first = Tensor::full([len], 3.0, &device);
    let peak = peak_bytes();
    assert!(peak >= len * 4);
    drop(first);
    assert_eq!(cached_bytes(), len * 4, "the dropped tensor's buffer is cached");

    let fresh = memory.fresh_bytes();
    let zeros = Tensor::zeros([len], &device);
    assert_eq!(cached_bytes(), 0, "the next tensor of that size takes the cached buffer");
    assert_eq!(memory.fresh_bytes(), fresh, "a reused buffer is not a fresh allocation");
    assert!(zeros.to_vec().unwrap().iter().all(|v| *v == 0.0), "a reused buffer is cleared");
    drop(zeros);

    let slightly_smaller = Tensor::full([len - len / 16], 2.0, &device);
    assert_eq!(cached_bytes(), 0, "a tensor up to 1/8 smaller takes the cached buffer");
    assert_eq!(memory.fresh_bytes(), fresh);
    assert!(slightly_smaller.to_vec().unwrap().iter().all(|v| *v == 2.0));
    drop(slightly_smaller);
    assert_eq!(cached_bytes(), len * 4, "it returns whole");
    let much_smaller = Tensor::full([len / 2], 2.0, &device);
    assert_eq!(memory.fresh_bytes(), fresh + len * 2, "a tensor half the size is a fresh allocation");
    assert_eq!(cached_bytes(), 0, "for which the cached buffer is freed: together they would pass the peak");
    drop(much_smaller);
    release_cached_memory();

    memory.set_cache_headroom_percent(50);
    let kept = Tensor::full([len], 1.0, &device);
    drop(kept);
    let half = Tensor::full([len / 2], 1.0, &device);
    assert_eq!(cached_bytes(), len * 4, "with 50% headroom the cached buffer stays");
    assert!(live_bytes() + cached_bytes() <= peak_bytes() * 3 / 2);
    drop(half);
    release_cached_memory();
    memory.set_cache_headroom_percent(0);
    let zeros = Tensor::zeros([len], &device);

    let other = Tensor::full([len / 2], 1.0, &device);
    drop(zeros);
    assert!(live_bytes() + cached_bytes() <= peak_bytes(), "cache plus live tensors stay under the peak");
    drop(other);
    assert!(cached_bytes() > 0);
    release_cached_memory();
    assert_eq!(cached_bytes(), 0);
}
