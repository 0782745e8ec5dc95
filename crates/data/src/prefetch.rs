//! Background batch preparation: worker threads resize and gather batches a step or
//! two ahead through bounded queues, in order, so the training thread only receives
//! finished batches. Dropping the iterator early stops and joins the workers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use crate::Split;
use crate::batches::{Batch, BatchConfig, EpochPlan, make_batch};

/// Which batches of a split a [`Prefetcher`] prepares, and with how many threads:
/// `Pass::epoch(e)` is epoch `e` from its first batch on two worker threads;
/// `.from_batch(b)` resumes it at batch `b`, `.workers(n)` sets the threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pass {
    /// The epoch (it seeds the order of a shuffled or drawn epoch).
    pub epoch: usize,
    /// The first batch prepared (earlier ones are skipped, as a resumed run does).
    pub first_batch: usize,
    /// Worker threads, each keeping at most one finished batch waiting (at least 1).
    pub workers: usize,
}

impl Pass {
    /// Epoch `epoch` from its first batch, on two worker threads.
    pub fn epoch(epoch: usize) -> Self {
        Pass { epoch, first_batch: 0, workers: 2 }
    }

    /// The same pass starting at batch `first_batch`.
    pub fn from_batch(self, first_batch: usize) -> Self {
        Pass { first_batch, ..self }
    }

    /// The same pass on `workers` threads.
    pub fn workers(self, workers: usize) -> Self {
        Pass { workers, ..self }
    }
}

/// The batches of one epoch, prepared in the background. An iterator of [`Batch`].
pub struct Prefetcher {
    queues: Vec<Receiver<Batch>>,
    start: usize,
    next: usize,
    end: usize,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

impl Prefetcher {
    /// Starts preparing the batches of `pass` over `split`.
    pub fn new(split: &Split, config: &BatchConfig, pass: Pass) -> Self {
        let Pass { epoch, first_batch: start, workers } = pass;
        let plan = Arc::new(EpochPlan::new(split, config, epoch));
        let workers = workers.max(1);
        let stop = Arc::new(AtomicBool::new(false));
        let end = plan.batches();
        let mut queues = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        for w in 0..workers {
            let (sender, receiver) = sync_channel(1);
            let (split, plan, stop, size) = (split.clone(), plan.clone(), stop.clone(), config.image_size);
            handles.push(std::thread::spawn(move || {
                for b in (start + w..end).step_by(workers) {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    if sender.send(make_batch(&split, &plan, b, size)).is_err() {
                        break;
                    }
                }
            }));
            queues.push(receiver);
        }
        Prefetcher { queues, start, next: start, end, stop, workers: handles }
    }

    /// Batches in the whole epoch (including any skipped by `start`).
    pub fn batches_in_epoch(&self) -> usize {
        self.end
    }
}

impl Iterator for Prefetcher {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        if self.next >= self.end {
            return None;
        }
        let worker = (self.next - self.start) % self.queues.len();
        self.next += 1;
        Some(self.queues[worker].recv().expect("a batch worker panicked"))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.end.saturating_sub(self.next);
        (left, Some(left))
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.queues.clear();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}
