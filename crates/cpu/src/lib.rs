//! # kiln-cpu
//!
//! Kiln's CPU backend: every [`Backend`] kernel on host memory, parallel on rayon's
//! global pool (size it with `RAYON_NUM_THREADS` or `rayon::ThreadPoolBuilder`).
//! Every matrix product and convolution runs on one cache-blocked GEMM with packed
//! panels and a micro-kernel chosen at run time ([`GemmKernel`]: a 12×32 AVX-512 tile
//! where the CPU has AVX-512F, 6×16 with AVX2 + FMA where it has those, portable Rust
//! otherwise). Convolutions are implicit GEMMs: the
//! im2col matrix is packed straight into the GEMM's panels, never materialized.
//!
//! ```
//! use kiln_cpu::CpuDevice;
//! use kiln_tensor::{Device, Tensor};
//!
//! let device = Device::cpu();
//! let x = Tensor::from_vec([2], vec![1.0, -2.0], &device);
//! assert_eq!(x.relu().to_vec().unwrap(), vec![1.0, 0.0]);
//! ```

mod buffers;
mod conv;
mod elementwise;
mod gemm;
mod optim;
mod pool;
mod reduce;
mod scratch;
mod storage;
#[cfg(test)]
mod test_values;

use std::sync::{Arc, OnceLock};

use kiln_tensor::{
    AdamStep, AxisSplit, Backend, BinaryOp, Conv2dGeometry, Device, MatmulDims, Pool2dGeometry, Result,
    SgdStep, Shape, StorageRef, UnaryOp,
};

pub use buffers::{cached_bytes, release_cached_memory};
pub use gemm::GemmKernel;
pub use storage::{live_bytes, peak_live_bytes};
use storage::{read_f32, read_i32, wrap_f32, wrap_i32, write_f32};

/// The CPU backend. Stateless apart from rayon's pool, so one shared instance serves
/// the whole process (see [`CpuDevice::cpu`]).
#[derive(Debug, Default)]
pub struct CpuBackend;

/// `Device::cpu()`: the shared CPU device.
pub trait CpuDevice {
    /// The process-wide CPU device.
    fn cpu() -> Self;
}

impl CpuDevice for Device {
    fn cpu() -> Device {
        static DEVICE: OnceLock<Device> = OnceLock::new();
        DEVICE.get_or_init(|| Device::new(Arc::new(CpuBackend))).clone()
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> String {
        let threads = rayon::current_num_threads();
        let unit = if threads == 1 { "thread" } else { "threads" };
        format!("cpu ({threads} {unit}, GEMM {})", GemmKernel::detect().name())
    }

    fn memory_in_use(&self) -> usize {
        live_bytes()
    }

    fn upload_f32(&self, data: Vec<f32>) -> StorageRef {
        wrap_f32(data)
    }

    fn upload_i32(&self, data: Vec<i32>) -> StorageRef {
        wrap_i32(data)
    }

    fn full(&self, len: usize, value: f32) -> StorageRef {
        let mut data = buffers::take(len);
        data.fill(value);
        wrap_f32(data)
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
        wrap_f32(elementwise::unary(op, &read_f32(x)))
    }

    fn unary_backward(&self, op: UnaryOp, x: &StorageRef, y: &StorageRef, grad: &StorageRef) -> StorageRef {
        wrap_f32(elementwise::unary_backward(op, &read_f32(x), &read_f32(y), &read_f32(grad)))
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
        wrap_f32(elementwise::binary(op, &read_f32(a), a_shape, &read_f32(b), b_shape, out_shape))
    }

    fn broadcast_to(&self, x: &StorageRef, shape: &Shape, out_shape: &Shape) -> StorageRef {
        wrap_f32(elementwise::broadcast_to(&read_f32(x), shape, out_shape))
    }

    fn sum_axis(&self, x: &StorageRef, split: AxisSplit) -> StorageRef {
        wrap_f32(reduce::sum_axis(&read_f32(x), split))
    }

    fn max_axis(&self, x: &StorageRef, split: AxisSplit) -> (StorageRef, StorageRef) {
        let (values, argmax) = reduce::max_axis(&read_f32(x), split);
        (wrap_f32(values), wrap_i32(argmax))
    }

    fn max_axis_backward(&self, grad: &StorageRef, argmax: &StorageRef, split: AxisSplit) -> StorageRef {
        wrap_f32(reduce::max_axis_backward(&read_f32(grad), read_i32(argmax), split))
    }

    fn softmax(&self, x: &StorageRef, split: AxisSplit, log: bool) -> StorageRef {
        wrap_f32(reduce::softmax(&read_f32(x), split, log))
    }

    fn softmax_backward(&self, y: &StorageRef, grad: &StorageRef, split: AxisSplit, log: bool) -> StorageRef {
        wrap_f32(reduce::softmax_backward(&read_f32(y), &read_f32(grad), split, log))
    }

    fn cross_entropy(
        &self,
        logits: &StorageRef,
        labels: &StorageRef,
        n: usize,
        classes: usize,
    ) -> (StorageRef, StorageRef) {
        let (loss, probs) = reduce::cross_entropy(&read_f32(logits), read_i32(labels), n, classes);
        (wrap_f32(vec![loss]), wrap_f32(probs))
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
        wrap_f32(reduce::cross_entropy_backward(&read_f32(probs), read_i32(labels), grad, n, classes))
    }

    fn matmul(&self, a: &StorageRef, b: &StorageRef, dims: MatmulDims) -> StorageRef {
        let mut c = buffers::take(dims.m * dims.n);
        gemm::gemm(&read_f32(a), &read_f32(b), &mut c, dims);
        wrap_f32(c)
    }

    fn conv2d(
        &self,
        x: &StorageRef,
        weight: &StorageRef,
        bias: Option<&StorageRef>,
        geo: &Conv2dGeometry,
    ) -> StorageRef {
        let bias = bias.map(read_f32);
        wrap_f32(conv::forward(&read_f32(x), &read_f32(weight), bias.as_deref().map(Vec::as_slice), geo))
    }

    fn conv2d_backward_input(
        &self,
        grad: &StorageRef,
        weight: &StorageRef,
        geo: &Conv2dGeometry,
    ) -> StorageRef {
        wrap_f32(conv::backward_input(&read_f32(grad), &read_f32(weight), geo))
    }

    fn conv2d_backward_weight(
        &self,
        x: &StorageRef,
        grad: &StorageRef,
        geo: &Conv2dGeometry,
        with_bias: bool,
    ) -> (StorageRef, Option<StorageRef>) {
        let (dw, db) = conv::backward_weight(&read_f32(x), &read_f32(grad), geo, with_bias);
        (wrap_f32(dw), db.map(wrap_f32))
    }

    fn max_pool2d(&self, x: &StorageRef, geo: &Pool2dGeometry) -> (StorageRef, StorageRef) {
        let (values, argmax) = pool::forward(&read_f32(x), geo);
        (wrap_f32(values), wrap_i32(argmax))
    }

    fn max_pool2d_backward(
        &self,
        grad: &StorageRef,
        argmax: &StorageRef,
        geo: &Pool2dGeometry,
    ) -> StorageRef {
        wrap_f32(pool::backward(&read_f32(grad), read_i32(argmax), geo))
    }

    fn dropout(&self, x: &StorageRef, p: f32, seed: u64) -> StorageRef {
        wrap_f32(elementwise::dropout(&read_f32(x), p, seed))
    }

    fn sgd_update(
        &self,
        param: &StorageRef,
        grad: &StorageRef,
        velocity: Option<&StorageRef>,
        step: SgdStep,
    ) {
        let grad = read_f32(grad);
        let mut velocity = velocity.map(write_f32);
        optim::sgd(&mut write_f32(param), &grad, velocity.as_deref_mut().map(Vec::as_mut_slice), step);
    }

    fn adam_update(
        &self,
        param: &StorageRef,
        grad: &StorageRef,
        m: &StorageRef,
        v: &StorageRef,
        step: AdamStep,
    ) {
        let grad = read_f32(grad);
        optim::adam(&mut write_f32(param), &grad, &mut write_f32(m), &mut write_f32(v), step);
    }

    fn copy_into(&self, dst: &StorageRef, src: &StorageRef) {
        if Arc::ptr_eq(dst, src) {
            return;
        }
        let src = read_f32(src);
        write_f32(dst).copy_from_slice(&src);
    }
}
