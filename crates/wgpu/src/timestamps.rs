//! GPU timestamps. When the adapter has `Features::TIMESTAMP_QUERY`, a timing window
//! stamps the beginning and the end of every dispatch's compute pass; closing the window
//! resolves the stamps into GPU time per kernel family. The autotuner times its
//! candidates this way (the wall clock where the adapter has no timestamps), and
//! `kiln-bench` reports a training step's GPU milliseconds and GFLOP/s per family.

use std::collections::BTreeMap;

/// Dispatches one window can time: two stamps each, and wgpu allows 4,096 queries in a
/// set. Later dispatches in the same window run untimed and are counted as such.
pub const TIMED_DISPATCHES: u32 = wgpu::QUERY_SET_MAX_QUERIES / 2;

/// The query set the stamps go to and the buffer they are resolved into.
pub struct TimestampQueries {
    /// Two queries per timed dispatch.
    pub set: wgpu::QuerySet,
    /// Where `resolve_query_set` writes the stamps (8 bytes each).
    pub resolve: wgpu::Buffer,
    /// Nanoseconds per timestamp tick (`Queue::get_timestamp_period`).
    pub period_ns: f64,
}

impl TimestampQueries {
    /// The queries of a device created with `Features::TIMESTAMP_QUERY`.
    pub fn new(device: &wgpu::Device, queue: &wgpu::Queue) -> Self {
        let count = TIMED_DISPATCHES * 2;
        TimestampQueries {
            set: device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("kiln kernel timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count,
            }),
            resolve: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("kiln resolved timestamps"),
                size: u64::from(count) * u64::from(wgpu::QUERY_SIZE),
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
            period_ns: f64::from(queue.get_timestamp_period()),
        }
    }
}

/// The dispatches an open timing window has stamped.
#[derive(Debug, Default)]
pub struct Window {
    /// The kernel family of each timed dispatch, in query order.
    timed: Vec<&'static str>,
    /// Floating-point operations per family, counted by the GEMM passes.
    flops: BTreeMap<&'static str, f64>,
    untimed: u64,
}

impl Window {
    /// The query indices (beginning, end) for the next dispatch of `family`, or `None`
    /// once the window is full.
    pub fn stamp(&mut self, family: &'static str) -> Option<[u32; 2]> {
        let index = self.timed.len() as u32;
        if index >= TIMED_DISPATCHES {
            self.untimed += 1;
            return None;
        }
        self.timed.push(family);
        Some([2 * index, 2 * index + 1])
    }

    /// Adds `flops` floating-point operations to `family`'s count.
    pub fn add_flops(&mut self, family: &'static str, flops: f64) {
        *self.flops.entry(family).or_default() += flops;
    }

    /// Queries written so far.
    pub fn queries(&self) -> u32 {
        2 * self.timed.len() as u32
    }

    /// GPU time per family from the resolved stamps (`ticks`: beginning and end of each
    /// timed dispatch, in query order) at `period_ns` nanoseconds per tick.
    pub fn summarize(self, ticks: &[u64], period_ns: f64) -> KernelTimes {
        let mut families: BTreeMap<&'static str, FamilyTime> = BTreeMap::new();
        for (family, pair) in self.timed.iter().zip(ticks.chunks_exact(2)) {
            let entry = families.entry(family).or_insert_with(|| FamilyTime::new(family));
            entry.dispatches += 1;
            entry.gpu_ms += pair[1].saturating_sub(pair[0]) as f64 * period_ns / 1e6;
        }
        for (family, flops) in self.flops {
            families.entry(family).or_insert_with(|| FamilyTime::new(family)).flops = flops;
        }
        KernelTimes { families: families.into_values().collect(), untimed_dispatches: self.untimed }
    }
}

/// GPU time of one kernel family over a timing window.
#[derive(Clone, Debug, PartialEq)]
pub struct FamilyTime {
    /// `matmul`, `conv_forward`, `conv_input_grad`, `conv_weight_grad`, `elementwise`,
    /// `dropout`, `reduce`, `max_pool`, `optimizer` or `fma_peak`.
    pub family: &'static str,
    /// Timed dispatches of the family.
    pub dispatches: u64,
    /// Their GPU time, beginning to end of each compute pass, in milliseconds.
    pub gpu_ms: f64,
    /// Floating-point operations counted for the family (GEMM passes: 2·m·n·k; 0 for
    /// the families whose work is not counted).
    pub flops: f64,
}

impl FamilyTime {
    fn new(family: &'static str) -> Self {
        FamilyTime { family, dispatches: 0, gpu_ms: 0.0, flops: 0.0 }
    }

    /// GFLOP/s of the family, where its operations are counted and its time is not zero.
    pub fn gflops_per_s(&self) -> Option<f64> {
        (self.flops > 0.0 && self.gpu_ms > 0.0).then(|| self.flops / (self.gpu_ms * 1e6))
    }
}

/// GPU time per kernel family over a timing window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KernelTimes {
    /// One entry per family that ran, by name.
    pub families: Vec<FamilyTime>,
    /// Dispatches past the window's capacity ([`TIMED_DISPATCHES`]), not timed.
    pub untimed_dispatches: u64,
}

impl KernelTimes {
    /// The GPU time of every timed dispatch, in milliseconds.
    pub fn total_ms(&self) -> f64 {
        self.families.iter().map(|f| f.gpu_ms).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_become_milliseconds_and_gflops_per_family() {
        let mut window = Window::default();
        assert_eq!(window.stamp("matmul"), Some([0, 1]));
        assert_eq!(window.stamp("elementwise"), Some([2, 3]));
        assert_eq!(window.stamp("matmul"), Some([4, 5]));
        window.add_flops("matmul", 6e9);
        assert_eq!(window.queries(), 6);
        // Ticks of 2 ns: the matmuls take 1 ms and 2 ms, the elementwise 0.5 ms.
        let ticks = [100, 500_100, 600_000, 850_000, 1_000_000, 2_000_000];
        let times = window.summarize(&ticks, 2.0);
        assert_eq!(times.families.len(), 2);
        let elementwise = &times.families[0];
        assert_eq!((elementwise.family, elementwise.dispatches), ("elementwise", 1));
        assert!((elementwise.gpu_ms - 0.5).abs() < 1e-12);
        assert_eq!(elementwise.gflops_per_s(), None, "no operations counted");
        let matmul = &times.families[1];
        assert_eq!((matmul.family, matmul.dispatches), ("matmul", 2));
        assert!((matmul.gpu_ms - 3.0).abs() < 1e-12);
        assert!((matmul.gflops_per_s().unwrap() - 2000.0).abs() < 1e-9, "6 GFLOP in 3 ms");
        assert!((times.total_ms() - 3.5).abs() < 1e-12);
        assert_eq!(times.untimed_dispatches, 0);
    }

    #[test]
    fn a_full_window_counts_the_dispatches_it_cannot_time() {
        let mut window = Window::default();
        for _ in 0..TIMED_DISPATCHES {
            assert!(window.stamp("reduce").is_some());
        }
        assert_eq!(window.stamp("reduce"), None);
        assert_eq!(window.stamp("optimizer"), None);
        assert_eq!(window.queries(), wgpu::QUERY_SET_MAX_QUERIES);
        let ticks = vec![7; wgpu::QUERY_SET_MAX_QUERIES as usize];
        let times = window.summarize(&ticks, 1.0);
        assert_eq!(times.untimed_dispatches, 2);
        assert_eq!(times.families[0].dispatches, u64::from(TIMED_DISPATCHES));
        assert_eq!(times.total_ms(), 0.0);
    }

    #[test]
    fn an_end_stamp_before_its_beginning_counts_as_zero() {
        let mut window = Window::default();
        window.stamp("pool");
        assert_eq!(window.summarize(&[10, 3], 1.0).total_ms(), 0.0);
    }
}
