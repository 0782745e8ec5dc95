//! All-reduce bandwidth of AlexNet's gradients between the processes of an MPI run:
//! `mpirun -n 2 target/release/examples/allreduce_bench [VALUES] [REPEATS]`.
//!
//! Sums `VALUES` f32 (default 46,764,746, AlexNet's parameters at 224×224 with 10
//! classes) in [`kiln_dist::DEFAULT_BUCKET_BYTES`] buckets, as
//! `DataParallel::average_gradients` does, `REPEATS` times after one warm-up, and
//! prints one JSON line from rank 0: seconds per all-reduce (median) and the
//! algorithm bandwidth (gradient bytes / time) and bus bandwidth (× 2(N−1)/N, the
//! bytes each process sends in a ring all-reduce, as NCCL's tests report it).

use std::time::Instant;

use kiln_dist::{Collective, DEFAULT_BUCKET_BYTES, MpiWorld};

const ALEXNET_PARAMETERS: usize = 46_764_746;

fn main() {
    let mut args = std::env::args().skip(1);
    let values: usize = args.next().and_then(|v| v.parse().ok()).unwrap_or(ALEXNET_PARAMETERS);
    let repeats: usize = args.next().and_then(|v| v.parse().ok()).unwrap_or(10);
    let world = match MpiWorld::init() {
        Ok(world) => world,
        Err(err) => {
            eprintln!("error: {err}");
            std::process::exit(2);
        }
    };
    let mut gradients = vec![1.0f32; values];
    let bucket = DEFAULT_BUCKET_BYTES / 4;
    let mut seconds = Vec::with_capacity(repeats);
    for round in 0..=repeats {
        let start = Instant::now();
        for chunk in gradients.chunks_mut(bucket) {
            world.all_reduce_sum_f32(chunk);
        }
        if round > 0 {
            seconds.push(start.elapsed().as_secs_f64());
        }
        gradients.iter_mut().for_each(|g| *g = 1.0);
    }
    seconds.sort_by(f64::total_cmp);
    let median = seconds[seconds.len() / 2];
    let bytes = (values * 4) as f64;
    let n = world.size() as f64;
    if world.rank() == 0 {
        println!(
            "{{\"processes\": {}, \"values\": {values}, \"bucket_bytes\": {DEFAULT_BUCKET_BYTES}, \"repeats\": {repeats}, \"seconds_median\": {median:.6}, \"seconds_min\": {:.6}, \"algorithm_gb_per_s\": {:.3}, \"bus_gb_per_s\": {:.3}}}",
            world.size(),
            seconds[0],
            bytes / median / 1e9,
            bytes / median / 1e9 * 2.0 * (n - 1.0) / n
        );
    }
}
