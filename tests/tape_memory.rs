//! Nothing from a training step survives it: tape entries and CPU bytes return to the
//! same level after every one of 100 steps. (Its own test binary, since the tape
//! counter is process-wide; the bytes are those of a device of its own.)

use kiln::prelude::*;
use kiln::tensor::{SgdStep, live_tape_entries};

#[test]
fn hundred_steps_leave_no_tape_and_no_memory_behind() {
    let device = Device::cpu_with_threads(2).unwrap();
    let x = Tensor::randn([16, 1, 9, 9], 1, &device);
    let labels = Tensor::from_i32([16], (0..16).map(|i| i % 3).collect(), &device);
    let conv = Tensor::normal([4, 1, 3, 3], Normal { mean: 0.0, std: 0.3 }, 2, &device).with_requires_grad();
    let dense = Tensor::normal([3, 64], Normal { mean: 0.0, std: 0.1 }, 3, &device).with_requires_grad();
    let step_config = SgdStep { lr: 0.05, momentum: 0.0, weight_decay: 0.0, nesterov: false };

    let entries_before = live_tape_entries();
    let mut bytes_after_first = None;
    for step in 0..100 {
        let h = x.conv2d(&conv, None, 1, 1).relu().max_pool2d(3, 2, 0).flatten(1);
        let loss = h.matmul_with(&dense, false, true).dropout(0.2, step).cross_entropy(&labels);
        assert!(live_tape_entries() > entries_before, "the step records its ops");
        let grads = loss.backward();
        for param in [&conv, &dense] {
            let grad = grads.get(param).unwrap();
            device.backend().sgd_update(param.storage(), grad.storage(), None, step_config);
        }
        drop((h, loss, grads));
        assert_eq!(live_tape_entries(), entries_before, "step {step} left tape entries behind");
        let bytes = device.memory_in_use();
        let first = *bytes_after_first.get_or_insert(bytes);
        assert_eq!(bytes, first, "step {step} holds {bytes} bytes, step 0 held {first}");
    }
}
