//! Counting and timing work: dispatch and submit counters, GPU timestamp windows per
//! kernel family, and the wall-clock timing the autotuner falls back on.

use kiln_tensor::Result;

use super::{Gpu, WorkCounters};
use crate::timestamps::{KernelTimes, Window};

impl Gpu {
    /// The work recorded and submitted so far.
    pub fn counters(&self) -> WorkCounters {
        self.recorder.lock().expect("recorder lock").counters
    }

    /// Opens a timing window: from now on every dispatch is stamped (up to
    /// [`crate::timestamps::TIMED_DISPATCHES`]). False, and nothing opened, without
    /// timestamp queries or while a window is open.
    pub fn open_window(&self) -> bool {
        let mut recorder = self.recorder.lock().expect("recorder lock");
        if self.timestamps.is_none() || recorder.window.is_some() {
            return false;
        }
        recorder.window = Some(Window::default());
        true
    }

    /// Adds `flops` floating-point operations to `family` in the open timing window
    /// (nothing without one).
    pub fn count_flops(&self, family: &'static str, flops: f64) {
        if let Some(window) = self.recorder.lock().expect("recorder lock").window.as_mut() {
            window.add_flops(family, flops);
        }
    }

    /// Closes the timing window and returns the GPU time of its dispatches per kernel
    /// family (`None` when no window was open), after waiting for them. Errors wgpu
    /// reported stay queued for the next `synchronize` or read.
    pub fn close_window(&self) -> Result<Option<KernelTimes>> {
        let mut recorder = self.recorder.lock().expect("recorder lock");
        let Some(window) = recorder.window.take() else { return Ok(None) };
        let Some(queries) = self.timestamps.as_ref().filter(|_| window.queries() > 0) else {
            return Ok(Some(window.summarize(&[], 1.0)));
        };
        let bytes = u64::from(window.queries()) * u64::from(wgpu::QUERY_SIZE);
        let staging = self.staging.acquire(bytes);
        let encoder = self.encoder(&mut recorder);
        encoder.resolve_query_set(&queries.set, 0..window.queries(), &queries.resolve, 0);
        encoder.copy_buffer_to_buffer(&queries.resolve, 0, &staging, 0, bytes);
        let index = self.submit(&mut recorder);
        drop(recorder);
        let data = self.map_staging(staging, bytes, index, false)?;
        let ticks: Vec<u64> =
            data.chunks_exact(8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes"))).collect();
        Ok(Some(window.summarize(&ticks, queries.period_ns)))
    }

    /// How long `work`'s dispatches take on the GPU (by timestamps where the adapter has
    /// them and no window is open, else by the wall clock around waits for the GPU),
    /// leaving reported errors queued: the autotuner's clock.
    pub fn time(&self, work: &mut dyn FnMut()) -> Result<std::time::Duration> {
        if self.open_window() {
            work();
            let times = self.close_window()?.unwrap_or_default();
            return Ok(std::time::Duration::from_secs_f64(times.total_ms() / 1e3));
        }
        self.wait_idle()?;
        let start = std::time::Instant::now();
        work();
        self.wait_idle()?;
        Ok(start.elapsed())
    }
}
