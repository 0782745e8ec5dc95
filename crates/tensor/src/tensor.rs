//! `Tensor`: shape, element type, device storage and (when it requires grad) its tape
//! entry. Creation, moving data to and from devices, and reshaping live here; the
//! differentiable ops live in `ops/`, one family a file.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::autograd::{self, BackwardRule, Gradients, TapeEntry};
use crate::{DType, Device, KilnError, Result, Rng, Shape, StorageRef};

/// Identity of a tensor, stable for its whole life (parameters keep theirs across steps,
/// since optimizers update them in place). Gradients are keyed by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(u64);

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

impl TensorId {
    fn fresh() -> Self {
        TensorId(NEXT_ID.fetch_add(1, Ordering::Relaxed))
    }
}

/// A normal distribution's parameters, for [`Tensor::normal`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normal {
    /// The mean.
    pub mean: f32,
    /// The standard deviation.
    pub std: f32,
}

/// An n-dimensional array on a device. Cloning is cheap (the storage is shared). Data
/// moves between host and device only through explicit calls (`to_vec`, `to_device`).
///
/// Parameters are leaves that require grad; `backward` on a scalar returns every
/// leaf's gradient:
///
/// ```
/// use kiln_cpu::CpuDevice;
/// use kiln_tensor::{Device, Tensor, no_grad};
///
/// let device = Device::cpu();
/// let w = Tensor::from_vec([2, 2], vec![1.0, 2.0, 3.0, 4.0], &device).with_requires_grad();
/// let x = Tensor::from_vec([1, 2], vec![1.0, -1.0], &device);
/// let loss = x.matmul(&w).relu().sum();
/// let grads = loss.backward();
/// // x·w = [-2, -2]: ReLU stops every gradient.
/// assert_eq!(loss.item().unwrap(), 0.0);
/// assert_eq!(grads.get(&w).unwrap().to_vec().unwrap(), vec![0.0; 4]);
/// // Evaluation records nothing.
/// let y = no_grad(|| x.matmul(&w).neg());
/// assert_eq!(y.to_vec().unwrap(), vec![2.0, 2.0]);
/// ```
#[derive(Clone)]
pub struct Tensor(Arc<TensorInner>);

struct TensorInner {
    id: TensorId,
    shape: Shape,
    device: Device,
    storage: StorageRef,
    requires_grad: bool,
    entry: Option<TapeEntry>,
}

impl Tensor {
    /// A tensor with no history over existing storage.
    pub fn from_storage(storage: StorageRef, shape: impl Into<Shape>, device: &Device) -> Self {
        let shape = shape.into();
        assert_eq!(
            storage.len(),
            shape.numel(),
            "storage of {} elements cannot have shape {shape}",
            storage.len()
        );
        Tensor(Arc::new(TensorInner {
            id: TensorId::fresh(),
            shape,
            device: device.clone(),
            storage,
            requires_grad: false,
            entry: None,
        }))
    }

    /// The result of an op: records a tape entry when recording is on and any input
    /// requires grad.
    pub(crate) fn from_op(
        storage: StorageRef,
        shape: Shape,
        inputs: &[&Tensor],
        rule: impl BackwardRule + 'static,
    ) -> Self {
        let device = inputs[0].device().clone();
        let record = autograd::is_recording() && inputs.iter().any(|t| t.requires_grad());
        let mut tensor = Tensor::from_storage(storage, shape, &device);
        if record {
            let inner = Arc::get_mut(&mut tensor.0).expect("a fresh tensor is unshared");
            inner.requires_grad = true;
            let inputs = inputs.iter().map(|t| (*t).clone()).collect();
            inner.entry = Some(TapeEntry::new(inputs, Box::new(rule)));
        }
        tensor
    }

    /// An f32 tensor from row-major `data`; panics if `data` does not fill `shape`.
    pub fn from_vec(shape: impl Into<Shape>, data: Vec<f32>, device: &Device) -> Self {
        let shape = shape.into();
        assert_eq!(data.len(), shape.numel(), "from_vec: {} values for shape {shape}", data.len());
        Tensor::from_storage(device.backend().upload_f32(data), shape, device)
    }

    /// An i32 tensor (class labels, indices) from row-major `data`.
    pub fn from_i32(shape: impl Into<Shape>, data: Vec<i32>, device: &Device) -> Self {
        let shape = shape.into();
        assert_eq!(data.len(), shape.numel(), "from_i32: {} values for shape {shape}", data.len());
        Tensor::from_storage(device.backend().upload_i32(data), shape, device)
    }

    /// A one-element tensor of shape `[]`.
    pub fn scalar(value: f32, device: &Device) -> Self {
        Tensor::full(Shape::scalar(), value, device)
    }

    /// Every element `value`.
    pub fn full(shape: impl Into<Shape>, value: f32, device: &Device) -> Self {
        let shape = shape.into();
        Tensor::from_storage(device.backend().full(shape.numel(), value), shape, device)
    }

    /// Every element 0.
    pub fn zeros(shape: impl Into<Shape>, device: &Device) -> Self {
        Tensor::full(shape, 0.0, device)
    }

    /// Every element 1.
    pub fn ones(shape: impl Into<Shape>, device: &Device) -> Self {
        Tensor::full(shape, 1.0, device)
    }

    /// Uniform in `range` (`low..high`), drawn on the host from `seed` (the same values
    /// on every device).
    pub fn rand_uniform(shape: impl Into<Shape>, range: Range<f32>, seed: u64, device: &Device) -> Self {
        let shape = shape.into();
        let mut rng = Rng::new(seed);
        let width = range.end - range.start;
        let data = (0..shape.numel()).map(|_| range.start + width * rng.next_f32()).collect();
        Tensor::from_vec(shape, data, device)
    }

    /// Standard normal (mean 0, standard deviation 1), drawn on the host from `seed`:
    /// PyTorch's `randn` with a seed.
    pub fn randn(shape: impl Into<Shape>, seed: u64, device: &Device) -> Self {
        Tensor::normal(shape, Normal { mean: 0.0, std: 1.0 }, seed, device)
    }

    /// Normal with `normal`'s mean and standard deviation, drawn on the host from `seed`.
    pub fn normal(shape: impl Into<Shape>, normal: Normal, seed: u64, device: &Device) -> Self {
        let shape = shape.into();
        let mut rng = Rng::new(seed);
        let Normal { mean, std } = normal;
        let data = (0..shape.numel()).map(|_| mean + std * rng.normal() as f32).collect();
        Tensor::from_vec(shape, data, device)
    }

    /// This tensor's identity.
    pub fn id(&self) -> TensorId {
        self.0.id
    }

    /// The shape.
    pub fn shape(&self) -> &Shape {
        &self.0.shape
    }

    /// The dimensions (shorthand for `shape().dims()`).
    pub fn dims(&self) -> &[usize] {
        self.0.shape.dims()
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.0.shape.numel()
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.0.storage.dtype()
    }

    /// The device holding the data.
    pub fn device(&self) -> &Device {
        &self.0.device
    }

    /// The device storage (for backends and optimizers).
    pub fn storage(&self) -> &StorageRef {
        &self.0.storage
    }

    /// The device storage, handed over: when nothing else holds this tensor, the
    /// returned reference is the storage's only one, so a backend may write into it
    /// (e.g. a gradient computed in the buffer of the gradient it came from).
    pub(crate) fn into_storage(self) -> StorageRef {
        match Arc::try_unwrap(self.0) {
            Ok(inner) => inner.storage,
            Err(shared) => shared.storage.clone(),
        }
    }

    /// Whether gradients flow to or through this tensor.
    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad
    }

    /// This tensor as a leaf that requires grad (a parameter): the same storage, a new
    /// identity, no history.
    pub fn with_requires_grad(&self) -> Tensor {
        assert_eq!(self.dtype(), DType::F32, "only f32 tensors can require grad");
        let mut leaf = self.detach();
        Arc::get_mut(&mut leaf.0).expect("a fresh tensor is unshared").requires_grad = true;
        leaf
    }

    /// The same data without history or grad: a constant.
    pub fn detach(&self) -> Tensor {
        Tensor::from_storage(self.storage().clone(), self.shape().clone(), self.device())
    }

    pub(crate) fn tape_entry(&self) -> Option<&TapeEntry> {
        self.0.entry.as_ref()
    }

    /// Copies the f32 data to the host (row-major).
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        self.expect_dtype(DType::F32)?;
        self.device().backend().to_vec_f32(self.storage())
    }

    /// Copies the i32 data to the host (row-major).
    pub fn to_vec_i32(&self) -> Result<Vec<i32>> {
        self.expect_dtype(DType::I32)?;
        self.device().backend().to_vec_i32(self.storage())
    }

    /// The value of a one-element f32 tensor; panics naming the shape otherwise.
    pub fn item(&self) -> Result<f32> {
        assert_eq!(self.numel(), 1, "item() needs one element, the shape is {}", self.shape());
        Ok(self.to_vec()?[0])
    }

    /// A copy on `device` (a constant: history is not carried across devices).
    pub fn to_device(&self, device: &Device) -> Result<Tensor> {
        if device == self.device() {
            return Ok(self.detach());
        }
        Ok(match self.dtype() {
            DType::F32 => Tensor::from_vec(self.shape().clone(), self.to_vec()?, device),
            DType::I32 => Tensor::from_i32(self.shape().clone(), self.to_vec_i32()?, device),
        })
    }

    /// Backpropagates from this one-element loss; returns the gradient of every leaf
    /// that requires grad and that the loss depends on.
    pub fn backward(&self) -> Gradients {
        assert_eq!(self.numel(), 1, "backward() needs a one-element loss, the shape is {}", self.shape());
        self.backward_with(&Tensor::ones(self.shape().clone(), self.device()))
    }

    /// Backpropagates `grad` (the gradient of some scalar with respect to this tensor).
    pub fn backward_with(&self, grad: &Tensor) -> Gradients {
        assert_eq!(
            grad.shape(),
            self.shape(),
            "backward_with: gradient shape {} differs from tensor shape {}",
            grad.shape(),
            self.shape()
        );
        autograd::run_backward(self, grad.detach())
    }

    fn expect_dtype(&self, expected: DType) -> Result<()> {
        match self.dtype() {
            found if found == expected => Ok(()),
            found => Err(KilnError::DType { expected, found }),
        }
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Tensor({} {}, {}{})",
            self.dtype(),
            self.shape(),
            self.device().name(),
            if self.requires_grad() { ", requires_grad" } else { "" }
        )
    }
}
