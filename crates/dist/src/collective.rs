//! `Collective`: the collective operations data-parallel training needs, and
//! `SingleProcess`, the world of one process.

/// Collective operations over the processes of a run. Every process must make the same
/// calls in the same order with buffers of the same length (MPI's rule); rank 0 is the
/// root of every broadcast.
pub trait Collective {
    /// This process's rank, `0..size()`.
    fn rank(&self) -> usize;
    /// Number of processes.
    fn size(&self) -> usize;
    /// Replaces `values` on every process by their element-wise sum over all processes.
    fn all_reduce_sum_f32(&self, values: &mut [f32]);
    /// [`Collective::all_reduce_sum_f32`] for f64.
    fn all_reduce_sum_f64(&self, values: &mut [f64]);
    /// Replaces `values` on every process by rank 0's.
    fn broadcast_f32(&self, values: &mut [f32]);
    /// Replaces `bytes` on every process by rank 0's (the length follows rank 0's).
    fn broadcast_bytes(&self, bytes: &mut Vec<u8>);
    /// Returns once every process has called it: what processes that end together call
    /// before exiting, so that none exits (and has its launcher end the others) while
    /// another is still writing its last words.
    fn barrier(&self);
    /// Ends every process of the run with exit code `code`: what a process that hit an
    /// error calls, so that no other process waits forever in a collective.
    fn abort(&self, code: i32) -> !;
}

/// A run of one process: sums and broadcasts leave the values as they are.
#[derive(Clone, Copy, Debug, Default)]
pub struct SingleProcess;

impl Collective for SingleProcess {
    fn rank(&self) -> usize {
        0
    }

    fn size(&self) -> usize {
        1
    }

    fn all_reduce_sum_f32(&self, _values: &mut [f32]) {}

    fn all_reduce_sum_f64(&self, _values: &mut [f64]) {}

    fn broadcast_f32(&self, _values: &mut [f32]) {}

    fn broadcast_bytes(&self, _bytes: &mut Vec<u8>) {}

    fn barrier(&self) {}

    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}
