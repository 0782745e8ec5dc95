//! Measures how fast the prefetcher delivers training batches:
//! `cargo run --release -p kiln-data --example loader_throughput -- [batch] [size] [batches] [workers]`
//! (defaults 128, 224, 100, 2). Prints batches/s and images/s.

use std::time::Instant;

use kiln_data::{BatchConfig, FashionMnist, Pass, Prefetcher};

fn main() {
    let arg =
        |i: usize, default: usize| std::env::args().nth(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (batch_size, image_size, batches, workers) = (arg(1, 128), arg(2, 224), arg(3, 100), arg(4, 2));
    let data = match FashionMnist::load(None) {
        Ok(data) => data,
        Err(err) => {
            eprintln!("error: {err}");
            std::process::exit(1);
        }
    };
    let config =
        BatchConfig { drop_last: true, ..BatchConfig::shuffled(batch_size, image_size).with_seed(1) };
    let start = Instant::now();
    let mut images = 0;
    for batch in Prefetcher::new(&data.train, &config, Pass::epoch(0).workers(workers)).take(batches) {
        images += batch.len();
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{{\"batch_size\": {batch_size}, \"image_size\": {image_size}, \"workers\": {workers}, \"batches\": {batches}, \"seconds\": {seconds:.3}, \"batches_per_s\": {:.1}, \"images_per_s\": {:.0}}}",
        batches as f64 / seconds,
        images as f64 / seconds
    );
}
