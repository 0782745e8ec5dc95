//! The data-parallel property without MPI: threads stand in for processes through a
//! `Collective` of their own, each trains on its shard of a batch, and after
//! `average_gradients` every thread holds the whole batch's gradients (dropout
//! included, through the shards' first-sample windows).

use std::sync::{Arc, Barrier, Mutex};

use kiln_cpu::CpuDevice;
use kiln_dist::{Collective, DataParallel};
use kiln_nn::{Dense, Dropout, Initializer, Mode, Module, ReLU, Sequential};
use kiln_tensor::{Device, Tensor};

/// Processes simulated by threads: each call waits for every rank's values and sums
/// them in rank order.
struct Threads {
    rank: usize,
    size: usize,
    barrier: Arc<Barrier>,
    slots: Arc<Mutex<Vec<Vec<f64>>>>,
}

impl Threads {
    fn world(size: usize) -> Vec<Threads> {
        let barrier = Arc::new(Barrier::new(size));
        let slots = Arc::new(Mutex::new(vec![Vec::new(); size]));
        (0..size).map(|rank| Threads { rank, size, barrier: barrier.clone(), slots: slots.clone() }).collect()
    }

    fn exchange(&self, mine: Vec<f64>, combine: impl Fn(&[Vec<f64>]) -> Vec<f64>) -> Vec<f64> {
        self.slots.lock().unwrap()[self.rank] = mine;
        self.barrier.wait();
        let result = combine(&self.slots.lock().unwrap());
        self.barrier.wait();
        result
    }

    fn summed(&self, values: &[f64]) -> Vec<f64> {
        self.exchange(values.to_vec(), |all| {
            (0..all[0].len()).map(|i| all.iter().map(|rank| rank[i]).sum()).collect()
        })
    }
}

impl Collective for Threads {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn all_reduce_sum_f32(&self, values: &mut [f32]) {
        let wide: Vec<f64> = values.iter().map(|&v| f64::from(v)).collect();
        for (v, s) in values.iter_mut().zip(self.summed(&wide)) {
            *v = s as f32;
        }
    }

    fn all_reduce_sum_f64(&self, values: &mut [f64]) {
        let sums = self.summed(values);
        values.copy_from_slice(&sums);
    }

    fn broadcast_f32(&self, values: &mut [f32]) {
        let wide: Vec<f64> = values.iter().map(|&v| f64::from(v)).collect();
        let root = self.exchange(wide, |all| all[0].clone());
        for (v, r) in values.iter_mut().zip(root) {
            *v = r as f32;
        }
    }

    fn broadcast_bytes(&self, bytes: &mut Vec<u8>) {
        let root = self.exchange(bytes.iter().map(|&b| f64::from(b)).collect(), |all| all[0].clone());
        *bytes = root.into_iter().map(|b| b as u8).collect();
    }

    fn barrier(&self) {
        self.barrier.wait();
    }

    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

/// A small network with dropout, its parameters drawn from `seed`.
fn network(device: &Device, seed: u64) -> Sequential {
    let mut init = Initializer::new(device, seed);
    Sequential::new()
        .push(Dense::new(&mut init, 6, 16))
        .push(ReLU)
        .push(Dropout::new(0.5))
        .push(Dense::new(&mut init, 16, 4))
}

const BATCH: usize = 10;

fn batch(device: &Device) -> (Vec<f32>, Vec<i32>) {
    let x = Tensor::randn([BATCH, 6], 3, device).to_vec().unwrap();
    (x, (0..BATCH as i32).map(|i| i % 4).collect())
}

/// Gradients of the whole batch in one process, in parameter order.
fn whole_batch_gradients() -> Vec<Vec<f32>> {
    let device = Device::cpu();
    let model = network(&device, 1);
    let (x, labels) = batch(&device);
    let x = Tensor::from_vec([BATCH, 6], x, &device);
    let labels = Tensor::from_i32([BATCH], labels, &device);
    let grads = model.forward(&x, Mode::train(99)).cross_entropy(&labels).backward();
    model.named_parameters().iter().map(|(_, p)| grads.get(p).unwrap().to_vec().unwrap()).collect()
}

#[test]
fn three_shards_average_to_the_whole_batch_gradients() {
    let want = whole_batch_gradients();
    let handles: Vec<_> = Threads::world(3)
        .into_iter()
        .map(|collective| {
            std::thread::spawn(move || {
                let device = Device::cpu();
                let rank = collective.rank;
                let parallel = DataParallel::new(Box::new(collective)).with_bucket_bytes(64);
                // Every rank starts from different weights: the broadcast makes them rank 0's.
                let mut model = network(&device, 1 + rank as u64);
                parallel.broadcast_parameters(&mut model).unwrap();
                let (x, labels) = batch(&device);
                let range = [0..3, 3..6, 6..10][rank].clone();
                let rows = range.len();
                let x = Tensor::from_vec([rows, 6], x[range.start * 6..range.end * 6].to_vec(), &device);
                let labels = Tensor::from_i32([rows], labels[range.clone()].to_vec(), &device);
                let mode = Mode::train(99).with_first_sample(range.start as u64);
                let mut grads = model.forward(&x, mode).cross_entropy(&labels).backward();
                let share = rows as f32 / BATCH as f32;
                parallel.average_gradients(&model, &mut grads, share).unwrap();
                let got: Vec<Vec<f32>> = model
                    .named_parameters()
                    .iter()
                    .map(|(_, p)| grads.get(p).unwrap().to_vec().unwrap())
                    .collect();
                got
            })
        })
        .collect();
    for handle in handles {
        let got = handle.join().unwrap();
        for (w, g) in want.iter().zip(&got) {
            let worst = w.iter().zip(g).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            let scale = w.iter().map(|a| a.abs()).fold(0.0f32, f32::max);
            assert!(worst <= 1e-5 * scale.max(1.0), "shard gradients differ by {worst} (scale {scale})");
        }
    }
}

#[test]
fn rank0_check_gives_every_process_rank_0s_outcome_and_runs_only_there() {
    let handles: Vec<_> = Threads::world(3)
        .into_iter()
        .map(|threads| {
            std::thread::spawn(move || {
                let rank = threads.rank;
                let parallel = DataParallel::new(Box::new(threads));
                let passed = parallel.rank0_check(|| Ok(()));
                let failed = parallel.rank0_check(|| {
                    assert_eq!(rank, 0, "only rank 0 runs the check");
                    Err("the checkpoint path is a directory".to_string())
                });
                parallel.barrier();
                (passed, failed)
            })
        })
        .collect();
    for handle in handles {
        let (passed, failed) = handle.join().unwrap();
        assert_eq!(passed, Ok(()));
        assert_eq!(failed, Err("the checkpoint path is a directory".to_string()));
    }
}
