//! # kiln-cpu
//!
//! Kiln's CPU backend: every [`Backend`] kernel on host memory, parallel on the
//! device's thread pool. `Device::cpu()` is the shared default on rayon's global pool;
//! `Device::cpu_with_threads(n)` builds an independent device with a pool of `n`
//! threads and its own [`HostMemory`] (byte counts and buffer cache), so devices never
//! share state.
//! Every matrix product and convolution runs on one cache-blocked GEMM with packed
//! panels and a micro-kernel chosen at run time ([`GemmKernel`]: a 12×32 AVX-512 tile
//! where the CPU has AVX-512F, 6×16 with AVX2 + FMA where it has those, portable Rust
//! otherwise). Convolutions are implicit GEMMs: the
//! im2col matrix is packed straight into the GEMM's panels, never materialized.
//! Stride-1 3×3 and 5×5 convolutions with at least 16 channels in and out run as
//! Winograd F(4×4, 3×3) and F(3×3, 5×5) (4× and 4.6× less GEMM work) in the forward
//! pass and both gradients.
//!
//! ```
//! use kiln_cpu::CpuDevice;
//! use kiln_tensor::{Device, Tensor};
//!
//! let device = Device::cpu();
//! let x = Tensor::from_vec([2], vec![1.0, -2.0], &device);
//! assert_eq!(x.relu().to_vec().unwrap(), vec![1.0, 0.0]);
//! ```

mod attention;
mod channel_norm;
mod conv;
mod elementwise;
mod gemm;
mod indexing;
mod lanes;
mod memory;
mod optim;
mod pool;
mod reduce;
#[cfg(target_arch = "x86_64")]
mod row_blocks;
mod row_norm;
#[cfg(target_arch = "x86_64")]
mod row_norm_avx512;
mod simd;
#[cfg(target_arch = "x86_64")]
mod softmax_avx512;
#[cfg(test)]
mod softmax_reference;
mod softmax_row;
mod storage;
mod strided;
#[cfg(test)]
mod test_values;
mod thread_buffer;

use std::any::Any;
use std::sync::{Arc, OnceLock};

use rayon::prelude::*;

use kiln_tensor::{
    Activation, AdamStep, AttentionDims, AxisIndexing, AxisSplit, Backend, BinaryOp, ChannelStatistics,
    Conv2dGeometry, Device, DropoutMask, EpilogueDropout, KilnError, MatmulBatch, MatmulDims,
    PackedAttentionDims, Pool2dGeometry, Result, RowAffine, SgdStep, Shape, StorageRef, StridedView, UnaryOp,
};

pub use gemm::GemmKernel;
pub use memory::HostMemory;
use storage::{read_f32, read_i32, write_f32};

/// The CPU backend: a thread pool (its own, or rayon's global one) and its
/// [`HostMemory`] (byte counts and buffer cache). Nothing is shared between two
/// backends, so a program can run several with different thread counts, or run Kiln
/// inside its own rayon pool, without either seeing the other's threads or memory.
#[derive(Debug)]
pub struct CpuBackend {
    /// `None`: rayon's global pool (sized by `RAYON_NUM_THREADS` or the program).
    pool: Option<rayon::ThreadPool>,
    memory: Arc<HostMemory>,
}

impl Default for CpuBackend {
    fn default() -> Self {
        CpuBackend::on_global_pool()
    }
}

impl CpuBackend {
    /// A backend that runs on rayon's global pool, with memory of its own.
    pub fn on_global_pool() -> Self {
        CpuBackend { pool: None, memory: Arc::default() }
    }

    /// A backend with its own pool of `threads` threads and memory of its own.
    pub fn with_threads(threads: usize) -> Result<Self> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("kiln-cpu-{i}"))
            .build()
            .map_err(|err| KilnError::Device(format!("cannot start {threads} CPU threads: {err}")))?;
        Ok(CpuBackend { pool: Some(pool), memory: Arc::default() })
    }

    /// This backend's memory: live and peak bytes of its tensors, and its buffer cache.
    pub fn memory(&self) -> &HostMemory {
        &self.memory
    }

    /// Threads its kernels run on.
    pub fn threads(&self) -> usize {
        self.pool.as_ref().map_or_else(rayon::current_num_threads, rayon::ThreadPool::current_num_threads)
    }

    /// Runs `kernel` on this backend's pool.
    fn run<T: Send>(&self, kernel: impl FnOnce(&HostMemory) -> T + Send) -> T {
        match &self.pool {
            Some(pool) => pool.install(|| kernel(&self.memory)),
            None => kernel(&self.memory),
        }
    }

    fn f32(&self, data: Vec<f32>) -> StorageRef {
        storage::wrap_f32(&self.memory, data)
    }

    fn i32(&self, data: Vec<i32>) -> StorageRef {
        storage::wrap_i32(&self.memory, data)
    }
}

/// CPU devices: the shared default and independent ones.
pub trait CpuDevice: Sized {
    /// The process-wide CPU device: rayon's global pool, one shared memory.
    fn cpu() -> Self;

    /// A new, independent CPU device with its own pool of `threads` threads and its
    /// own memory.
    fn cpu_with_threads(threads: usize) -> Result<Self>;

    /// The CPU backend behind this device, or `None` for another kind of device.
    fn cpu_backend(&self) -> Option<&CpuBackend>;
}

impl CpuDevice for Device {
    fn cpu() -> Device {
        static DEVICE: OnceLock<Device> = OnceLock::new();
        DEVICE.get_or_init(|| Device::new(Arc::new(CpuBackend::on_global_pool()))).clone()
    }

    fn cpu_with_threads(threads: usize) -> Result<Device> {
        Ok(Device::new(Arc::new(CpuBackend::with_threads(threads)?)))
    }

    fn cpu_backend(&self) -> Option<&CpuBackend> {
        self.backend().as_any().downcast_ref::<CpuBackend>()
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> String {
        let threads = self.threads();
        let unit = if threads == 1 { "thread" } else { "threads" };
        format!("cpu ({threads} {unit}, GEMM {})", GemmKernel::detect().name())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn memory_in_use(&self) -> usize {
        self.memory.live_bytes()
    }

    fn upload_f32(&self, data: Vec<f32>) -> StorageRef {
        self.f32(data)
    }

    fn upload_i32(&self, data: Vec<i32>) -> StorageRef {
        self.i32(data)
    }

    fn full(&self, len: usize, value: f32) -> StorageRef {
        let mut data = self.memory.take(len);
        self.run(|_| data.par_chunks_mut(1 << 14).for_each(|chunk| chunk.fill(value)));
        self.f32(data)
    }

    fn to_vec_f32(&self, storage: &StorageRef) -> Result<Vec<f32>> {
        Ok(read_f32(storage).clone())
    }

    fn to_vec_i32(&self, storage: &StorageRef) -> Result<Vec<i32>> {
        Ok(read_i32(storage).to_vec())
    }

    fn synchronize(&self) -> Result<()> {
        Ok(())
    }

    fn unary(&self, op: UnaryOp, x: &StorageRef) -> StorageRef {
        self.f32(self.run(|mem| elementwise::unary(mem, op, &read_f32(x))))
    }

    fn unary_backward(&self, op: UnaryOp, x: &StorageRef, y: &StorageRef, grad: &StorageRef) -> StorageRef {
        let dx =
            self.run(|mem| elementwise::unary_backward(mem, op, &read_f32(x), &read_f32(y), &read_f32(grad)));
        self.f32(dx)
    }

    fn unary_backward_owned(
        &self,
        op: UnaryOp,
        x: &StorageRef,
        y: &StorageRef,
        grad: StorageRef,
    ) -> StorageRef {
        // Only reference to the gradient (so not `x` or `y` either): overwrite it.
        if Arc::strong_count(&grad) == 1 && Arc::weak_count(&grad) == 0 {
            self.run(|_| {
                elementwise::unary_backward_in_place(op, &read_f32(x), &read_f32(y), &mut write_f32(&grad))
            });
            return grad;
        }
        self.unary_backward(op, x, y, &grad)
    }

    fn binary(
        &self,
        op: BinaryOp,
        a: &StorageRef,
        a_shape: &Shape,
        b: &StorageRef,
        b_shape: &Shape,
        out_shape: &Shape,
    ) -> StorageRef {
        let out = self
            .run(|mem| elementwise::binary(mem, op, &read_f32(a), a_shape, &read_f32(b), b_shape, out_shape));
        self.f32(out)
    }

    fn broadcast_to(&self, x: &StorageRef, shape: &Shape, out_shape: &Shape) -> StorageRef {
        self.f32(self.run(|mem| elementwise::broadcast_to(mem, &read_f32(x), shape, out_shape)))
    }

    fn gather_axis(&self, x: &StorageRef, indices: &StorageRef, geometry: AxisIndexing) -> StorageRef {
        self.f32(self.run(|mem| indexing::gather(mem, &read_f32(x), read_i32(indices), geometry)))
    }

    fn scatter_add_axis(&self, src: &StorageRef, indices: &StorageRef, geometry: AxisIndexing) -> StorageRef {
        self.f32(self.run(|mem| indexing::scatter_add(mem, &read_f32(src), read_i32(indices), geometry)))
    }

    fn gather_view(&self, x: &StorageRef, view: &StridedView) -> StorageRef {
        self.f32(self.run(|mem| strided::gather(mem, &read_f32(x), view)))
    }

    fn scatter_view(&self, dst: &StorageRef, view: &StridedView, src: &StorageRef) {
        strided::scatter(&mut write_f32(dst), view, &read_f32(src));
    }

    fn sum_axis(&self, x: &StorageRef, split: AxisSplit) -> StorageRef {
        self.f32(self.run(|_| reduce::sum_axis(&read_f32(x), split)))
    }

    fn max_axis(&self, x: &StorageRef, split: AxisSplit) -> (StorageRef, StorageRef) {
        let (values, argmax) = self.run(|_| reduce::max_axis(&read_f32(x), split));
        (self.f32(values), self.i32(argmax))
    }

    fn max_axis_backward(&self, grad: &StorageRef, argmax: &StorageRef, split: AxisSplit) -> StorageRef {
        self.f32(self.run(|mem| reduce::max_axis_backward(mem, &read_f32(grad), read_i32(argmax), split)))
    }

    fn softmax(&self, x: &StorageRef, split: AxisSplit, log: bool) -> StorageRef {
        self.f32(self.run(|mem| reduce::softmax(mem, &read_f32(x), split, log)))
    }

    fn normalize_axis(&self, x: &StorageRef, split: AxisSplit, eps: f32) -> (StorageRef, StorageRef) {
        let (y, rstd) = self.run(|mem| reduce::normalize(mem, &read_f32(x), split, eps));
        (self.f32(y), self.f32(rstd))
    }

    fn normalize_axis_backward(
        &self,
        y: &StorageRef,
        rstd: &StorageRef,
        grad: &StorageRef,
        split: AxisSplit,
    ) -> StorageRef {
        self.f32(self.run(|mem| {
            reduce::normalize_backward(mem, &read_f32(y), &read_f32(rstd), &read_f32(grad), split)
        }))
    }

    fn channel_norm(
        &self,
        x: &StorageRef,
        weight: &StorageRef,
        bias: &StorageRef,
        given: Option<(&StorageRef, &StorageRef)>,
        split: AxisSplit,
        eps: f32,
    ) -> (StorageRef, StorageRef, StorageRef) {
        let (y, mean, var) = self.run(|mem| {
            let given = given.map(|(mean, var)| (read_f32(mean), read_f32(var)));
            let given = given.as_ref().map(|(mean, var)| (mean.as_slice(), var.as_slice()));
            channel_norm::channel_norm(
                mem,
                &read_f32(x),
                &read_f32(weight),
                &read_f32(bias),
                given,
                split,
                eps,
            )
        });
        (self.f32(y), self.f32(mean), self.f32(var))
    }

    fn channel_norm_backward(
        &self,
        x: &StorageRef,
        grad: &StorageRef,
        weight: &StorageRef,
        statistics: ChannelStatistics,
        split: AxisSplit,
        batch_statistics: bool,
    ) -> (StorageRef, StorageRef, StorageRef) {
        let (dx, dweight, dbias) = self.run(|mem| {
            let (mean, var) = (read_f32(statistics.mean), read_f32(statistics.var));
            channel_norm::channel_norm_backward(
                mem,
                &read_f32(x),
                &read_f32(grad),
                &read_f32(weight),
                (&mean, &var, statistics.eps),
                split,
                batch_statistics,
            )
        });
        (self.f32(dx), self.f32(dweight), self.f32(dbias))
    }

    fn row_norm(
        &self,
        x: &StorageRef,
        affine: RowAffine,
        split: AxisSplit,
        eps: f32,
    ) -> (StorageRef, StorageRef) {
        let (y, stats) = self.run(|mem| {
            let (weight, bias) = (affine.weight.map(read_f32), affine.bias.map(read_f32));
            let affine = (weight.as_ref().map(|w| w.as_slice()), bias.as_ref().map(|b| b.as_slice()));
            row_norm::row_norm(mem, &read_f32(x), affine, split, eps)
        });
        (self.f32(y), self.f32(stats))
    }

    fn row_norm_backward(
        &self,
        x: &StorageRef,
        grad: &StorageRef,
        weight: Option<&StorageRef>,
        stats: &StorageRef,
        split: AxisSplit,
    ) -> (StorageRef, StorageRef, StorageRef) {
        let (dx, dweight, dbias) = self.run(|mem| {
            let weight = weight.map(read_f32);
            let weight = weight.as_ref().map(|w| w.as_slice());
            row_norm::row_norm_backward(mem, &read_f32(x), &read_f32(grad), weight, &read_f32(stats), split)
        });
        (self.f32(dx), self.f32(dweight), self.f32(dbias))
    }

    fn softmax_backward(&self, y: &StorageRef, grad: &StorageRef, split: AxisSplit, log: bool) -> StorageRef {
        self.f32(self.run(|mem| reduce::softmax_backward(mem, &read_f32(y), &read_f32(grad), split, log)))
    }

    fn cross_entropy(
        &self,
        logits: &StorageRef,
        labels: &StorageRef,
        n: usize,
        classes: usize,
    ) -> (StorageRef, StorageRef) {
        let (loss, probs) =
            self.run(|mem| reduce::cross_entropy(mem, &read_f32(logits), read_i32(labels), n, classes));
        (self.f32(vec![loss]), self.f32(probs))
    }

    fn cross_entropy_backward(
        &self,
        probs: &StorageRef,
        labels: &StorageRef,
        grad: &StorageRef,
        n: usize,
        classes: usize,
    ) -> StorageRef {
        let grad = read_f32(grad)[0];
        let dx = self
            .run(|_| reduce::cross_entropy_backward(&read_f32(probs), read_i32(labels), grad, n, classes));
        self.f32(dx)
    }

    fn matmul(&self, a: &StorageRef, b: &StorageRef, dims: MatmulDims) -> StorageRef {
        let mut c = self.memory.take(dims.m * dims.n);
        self.run(|_| gemm::gemm(&read_f32(a), &read_f32(b), &mut c, dims, gemm::Threads::Pool));
        self.f32(c)
    }

    fn batched_matmul(
        &self,
        a: &StorageRef,
        b: &StorageRef,
        dims: MatmulDims,
        batch: MatmulBatch,
    ) -> StorageRef {
        let (a_len, b_len, c_len) = (dims.m * dims.k, dims.k * dims.n, dims.m * dims.n);
        let mut c = self.memory.take(batch.count * c_len);
        if c.is_empty() {
            return self.f32(c);
        }
        self.run(|_| {
            let (a, b) = (read_f32(a), read_f32(b));
            let operands = |i: usize| (&a[i * batch.a_stride..][..a_len], &b[i * batch.b_stride..][..b_len]);
            if batch.count >= rayon::current_num_threads() {
                // Enough products to keep every thread busy: one product per task.
                c.par_chunks_mut(c_len).enumerate().for_each(|(i, c_i)| {
                    let (a_i, b_i) = operands(i);
                    gemm::gemm(a_i, b_i, c_i, dims, gemm::Threads::Caller);
                });
            } else {
                for (i, c_i) in c.chunks_mut(c_len).enumerate() {
                    let (a_i, b_i) = operands(i);
                    gemm::gemm(a_i, b_i, c_i, dims, gemm::Threads::Pool);
                }
            }
        });
        self.f32(c)
    }

    fn attention(
        &self,
        q: &StorageRef,
        k: &StorageRef,
        v: &StorageRef,
        dims: AttentionDims,
        keep_weights: bool,
    ) -> (StorageRef, Option<StorageRef>) {
        let (out, weights) = self.run(|mem| {
            let (q, k, v) = (read_f32(q), read_f32(k), read_f32(v));
            attention::attention(mem, [&q[..], &k[..], &v[..]], dims, keep_weights)
        });
        (self.f32(out), weights.map(|w| self.f32(w)))
    }

    fn packed_attention(
        &self,
        qkv: &StorageRef,
        dims: PackedAttentionDims,
        keep_weights: bool,
    ) -> (StorageRef, Option<StorageRef>) {
        let (out, weights) =
            self.run(|mem| attention::packed_attention(mem, &read_f32(qkv), dims, keep_weights));
        (self.f32(out), weights.map(|w| self.f32(w)))
    }

    fn linear(
        &self,
        x: &StorageRef,
        weight: &StorageRef,
        bias: Option<&StorageRef>,
        dims: MatmulDims,
        activation: Activation,
        dropout: Option<EpilogueDropout>,
    ) -> StorageRef {
        let mut c = self.memory.take(dims.m * dims.n);
        self.run(|_| {
            let (x, weight) = (read_f32(x), read_f32(weight));
            let bias = bias.map(read_f32);
            // The bias goes in with the kernels' stores; activation and dropout run on
            // each row piece as the GEMM finishes it, while it is in cache (a second pass
            // over C read it back from memory).
            let activate = |row: usize, first_col: usize, values: &mut [f32]| {
                let first = (row * dims.n + first_col) as u32;
                for (j, v) in values.iter_mut().enumerate() {
                    let activated = activation.apply(*v);
                    *v = dropout.map_or(activated, |d| d.apply(first + j as u32, activated));
                }
            };
            let needs_rows = activation != Activation::Identity || dropout.is_some();
            let epilogue = gemm::Epilogue {
                column_bias: bias.as_deref().map(Vec::as_slice),
                rows: needs_rows.then_some(&activate as gemm::RowEpilogue),
            };
            gemm::gemm_then(&x, &weight, &mut c, dims, gemm::Threads::Pool, epilogue);
        });
        self.f32(c)
    }

    fn conv2d(
        &self,
        x: &StorageRef,
        weight: &StorageRef,
        bias: Option<&StorageRef>,
        geo: &Conv2dGeometry,
        activation: Activation,
    ) -> StorageRef {
        let out = self.run(|mem| {
            let bias = bias.map(read_f32);
            let bias = bias.as_deref().map(Vec::as_slice);
            conv::forward(mem, &read_f32(x), &read_f32(weight), bias, geo, activation)
        });
        self.f32(out)
    }

    fn conv2d_backward_input(
        &self,
        grad: &StorageRef,
        weight: &StorageRef,
        geo: &Conv2dGeometry,
    ) -> StorageRef {
        self.f32(self.run(|mem| conv::backward_input(mem, &read_f32(grad), &read_f32(weight), geo)))
    }

    fn conv2d_backward_weight(
        &self,
        x: &StorageRef,
        grad: &StorageRef,
        geo: &Conv2dGeometry,
        with_bias: bool,
    ) -> (StorageRef, Option<StorageRef>) {
        let (dw, db) =
            self.run(|mem| conv::backward_weight(mem, &read_f32(x), &read_f32(grad), geo, with_bias));
        (self.f32(dw), db.map(|db| self.f32(db)))
    }

    fn max_pool2d(&self, x: &StorageRef, geo: &Pool2dGeometry) -> (StorageRef, StorageRef) {
        let (values, argmax) = self.run(|mem| pool::forward(mem, &read_f32(x), geo));
        (self.f32(values), self.i32(argmax))
    }

    fn max_pool2d_values(&self, x: &StorageRef, geo: &Pool2dGeometry) -> StorageRef {
        self.f32(self.run(|mem| pool::forward_values(mem, &read_f32(x), geo)))
    }

    fn max_pool2d_backward(
        &self,
        grad: &StorageRef,
        argmax: &StorageRef,
        geo: &Pool2dGeometry,
    ) -> StorageRef {
        self.f32(self.run(|mem| pool::backward(mem, &read_f32(grad), read_i32(argmax), geo)))
    }

    fn dropout(&self, x: &StorageRef, p: f32, mask: DropoutMask) -> StorageRef {
        self.f32(self.run(|mem| elementwise::dropout(mem, &read_f32(x), p, mask)))
    }

    fn sgd_update(
        &self,
        param: &StorageRef,
        grad: &StorageRef,
        velocity: Option<&StorageRef>,
        step: SgdStep,
    ) {
        self.run(|_| {
            let grad = read_f32(grad);
            let mut velocity = velocity.map(write_f32);
            optim::sgd(&mut write_f32(param), &grad, velocity.as_deref_mut().map(Vec::as_mut_slice), step);
        });
    }

    fn adam_update(
        &self,
        param: &StorageRef,
        grad: &StorageRef,
        m: &StorageRef,
        v: &StorageRef,
        step: AdamStep,
    ) {
        self.run(|_| {
            let grad = read_f32(grad);
            optim::adam(&mut write_f32(param), &grad, &mut write_f32(m), &mut write_f32(v), step);
        });
    }

    fn copy_into(&self, dst: &StorageRef, src: &StorageRef) {
        if Arc::ptr_eq(dst, src) {
            return;
        }
        let src = read_f32(src);
        write_f32(dst).copy_from_slice(&src);
    }
}
