//! `DataParallel`: the model-level steps of data-parallel training on a [`Collective`]:
//! rank 0's parameters to every process, gradients averaged in fixed-order buckets,
//! metrics summed, and the time spent communicating.

use std::cell::Cell;
use std::time::{Duration, Instant};

use kiln_nn::Module;
use kiln_tensor::{Gradients, Result, Tensor};

use crate::{Collective, DistError};

/// Gradient bytes per all-reduce call unless [`DataParallel::with_bucket_bytes`] says
/// otherwise: large enough that per-call latency is small next to the transfer, small
/// enough that the host staging buffers stay modest.
pub const DEFAULT_BUCKET_BYTES: usize = 4 << 20;

/// Data-parallel training steps over the processes of a [`Collective`].
///
/// Every process holds the same model; each trains on its shard of every batch, then
/// [`DataParallel::average_gradients`] makes every process's gradients the whole
/// batch's, so the optimizer steps agree and the copies stay identical.
pub struct DataParallel {
    collective: Box<dyn Collective>,
    bucket_elements: usize,
    communication: Cell<Duration>,
}

impl DataParallel {
    /// Data parallelism over `collective`'s processes, with buckets of
    /// [`DEFAULT_BUCKET_BYTES`].
    pub fn new(collective: Box<dyn Collective>) -> Self {
        DataParallel {
            collective,
            bucket_elements: DEFAULT_BUCKET_BYTES / 4,
            communication: Cell::new(Duration::ZERO),
        }
    }

    /// The same with all-reduce buckets of about `bytes` bytes (at least one value).
    pub fn with_bucket_bytes(self, bytes: usize) -> Self {
        DataParallel { bucket_elements: (bytes / 4).max(1), ..self }
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.collective.rank()
    }

    /// Number of processes.
    pub fn size(&self) -> usize {
        self.collective.size()
    }

    /// Whether this is rank 0, the process that prints and writes files.
    pub fn is_root(&self) -> bool {
        self.rank() == 0
    }

    /// Fails unless a global batch of `batch` examples splits evenly over the processes.
    pub fn check_batch_size(&self, batch: usize) -> std::result::Result<(), DistError> {
        if batch.is_multiple_of(self.size()) {
            Ok(())
        } else {
            Err(DistError::IndivisibleBatch { batch, processes: self.size() })
        }
    }

    /// Replaces every parameter of `model` by rank 0's, so all processes start equal.
    /// Every value is read before the first broadcast: a process that cannot read its
    /// parameters fails before any collective, rather than skipping one the others
    /// wait in.
    pub fn broadcast_parameters(&self, model: &mut dyn Module) -> Result<()> {
        if self.size() == 1 {
            return Ok(());
        }
        let mut values = self.rank0_values(&model.named_parameters())?.into_iter();
        model.visit_parameters_mut("", &mut |_, param| {
            let rank0 = values.next().expect("the same parameters in the same order");
            *param = Tensor::from_vec(param.shape().clone(), rank0, param.device()).with_requires_grad();
        });
        Ok(())
    }

    /// Replaces every buffer of `model` (batch norm's running statistics) by rank 0's.
    /// Each process updates its buffers from its own shard of every batch, as under
    /// PyTorch's DDP without SyncBatchNorm; the trainer calls this before every
    /// evaluation, so all processes evaluate (and rank 0 saves) rank 0's statistics, as
    /// DDP's `broadcast_buffers` does.
    pub fn broadcast_buffers(&self, model: &mut dyn Module) -> Result<()> {
        if self.size() == 1 {
            return Ok(());
        }
        let mut values = self.rank0_values(&model.named_buffers())?.into_iter();
        model.visit_buffers_mut("", &mut |_, buffer| {
            let rank0 = values.next().expect("the same buffers in the same order");
            *buffer = Tensor::from_vec(buffer.shape().clone(), rank0, buffer.device());
        });
        Ok(())
    }

    /// Rank 0's values of `tensors`, on every process.
    fn rank0_values(&self, tensors: &[(String, Tensor)]) -> Result<Vec<Vec<f32>>> {
        let mut values = tensors.iter().map(|(_, t)| t.to_vec()).collect::<Result<Vec<_>>>()?;
        for tensor in &mut values {
            self.timed(|| self.collective.broadcast_f32(tensor));
        }
        Ok(values)
    }

    /// Makes `grads` the whole batch's gradients on every process: each process's
    /// gradients, weighted by `share` (its shard's fraction of the whole batch, e.g.
    /// 32/64), are summed over the processes. Buckets follow the model's parameter
    /// order, the same on every process, so every process sums in the same order and
    /// gets the same bits. A parameter without a gradient here (a process whose shard
    /// was empty has none) counts as zero.
    pub fn average_gradients(&self, model: &dyn Module, grads: &mut Gradients, share: f32) -> Result<()> {
        if self.size() == 1 && share == 1.0 {
            return Ok(());
        }
        let mut bucket: Vec<f32> = Vec::with_capacity(self.bucket_elements);
        let mut members: Vec<Tensor> = Vec::new();
        for (_, param) in model.named_parameters() {
            match grads.get(&param) {
                Some(grad) => bucket.extend(grad.to_vec()?.into_iter().map(|g| g * share)),
                None => bucket.resize(bucket.len() + param.shape().numel(), 0.0),
            }
            members.push(param);
            if bucket.len() >= self.bucket_elements {
                self.reduce_bucket(&mut bucket, &mut members, grads);
            }
        }
        if !members.is_empty() {
            self.reduce_bucket(&mut bucket, &mut members, grads);
        }
        Ok(())
    }

    /// Sums one bucket over the processes and hands each member its gradient.
    fn reduce_bucket(&self, bucket: &mut Vec<f32>, members: &mut Vec<Tensor>, grads: &mut Gradients) {
        self.timed(|| self.collective.all_reduce_sum_f32(bucket));
        let mut offset = 0;
        for param in members.drain(..) {
            let n = param.shape().numel();
            let grad =
                Tensor::from_vec(param.shape().clone(), bucket[offset..offset + n].to_vec(), param.device());
            grads.insert(&param, grad);
            offset += n;
        }
        bucket.clear();
    }

    /// Replaces `values` on every process by their sum over the processes (metrics:
    /// losses, counts, stop flags).
    pub fn sum(&self, values: &mut [f64]) {
        self.timed(|| self.collective.all_reduce_sum_f64(values));
    }

    /// Replaces `bytes` on every process by rank 0's (e.g. a checkpoint only rank 0 can
    /// read).
    pub fn broadcast_bytes(&self, bytes: &mut Vec<u8>) {
        self.timed(|| self.collective.broadcast_bytes(bytes));
    }

    /// Waits until every process has reached this call.
    pub fn barrier(&self) {
        self.timed(|| self.collective.barrier());
    }

    /// Rank 0's outcome of `check` on every process: rank 0 runs it (the others do not)
    /// and sends its error, if any, to the others, so that every process fails alike
    /// and none waits in a collective for a process that stopped. For checks only rank
    /// 0 can make, such as whether its output files can be written.
    pub fn rank0_check(
        &self,
        check: impl FnOnce() -> std::result::Result<(), String>,
    ) -> std::result::Result<(), String> {
        // Empty: rank 0's check passed; otherwise a marker byte and the message.
        let mut outcome = match self.is_root().then(check) {
            Some(Err(message)) => [b"!", message.as_bytes()].concat(),
            _ => Vec::new(),
        };
        self.broadcast_bytes(&mut outcome);
        match outcome.split_first() {
            Some((_, message)) => Err(String::from_utf8_lossy(message).into_owned()),
            None => Ok(()),
        }
    }

    /// Ends every process of the run with exit code `code`.
    pub fn abort(&self, code: i32) -> ! {
        self.collective.abort(code)
    }

    /// Time spent in collective operations so far (waiting for slower processes
    /// included).
    pub fn communication_time(&self) -> Duration {
        self.communication.get()
    }

    fn timed(&self, f: impl FnOnce()) {
        let start = Instant::now();
        f();
        self.communication.set(self.communication.get() + start.elapsed());
    }
}
