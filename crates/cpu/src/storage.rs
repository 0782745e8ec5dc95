//! `CpuStorage`: tensor memory in host RAM, with a process-wide count of the bytes held
//! so tests and benchmarks can see memory come back after a step.

use std::any::Any;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use kiln_tensor::{DType, Storage, StorageRef};

use crate::buffers;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static PEAK_LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

/// Bytes held by all live CPU tensors.
pub fn live_bytes() -> usize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

/// The most bytes live CPU tensors have held at once since the process started.
pub fn peak_live_bytes() -> usize {
    PEAK_LIVE_BYTES.load(Ordering::Relaxed)
}

/// Counts `bytes` more as live.
fn add_live(bytes: usize) {
    let live = LIVE_BYTES.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK_LIVE_BYTES.fetch_max(live, Ordering::Relaxed);
}

/// Host memory of one tensor. f32 data sits behind a lock because optimizers update
/// parameters in place; i32 data (labels, indices) is immutable.
#[derive(Debug)]
pub enum CpuStorage {
    /// Values and gradients.
    F32(RwLock<Vec<f32>>),
    /// Labels and indices.
    I32(Vec<i32>),
}

impl CpuStorage {
    fn bytes(&self) -> usize {
        self.len() * 4
    }
}

impl Drop for CpuStorage {
    fn drop(&mut self) {
        LIVE_BYTES.fetch_sub(self.bytes(), Ordering::Relaxed);
        if let CpuStorage::F32(data) = self {
            let data = data.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner());
            buffers::recycle(std::mem::take(data));
        }
    }
}

impl Storage for CpuStorage {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn len(&self) -> usize {
        match self {
            CpuStorage::F32(data) => data.read().expect("tensor lock poisoned").len(),
            CpuStorage::I32(data) => data.len(),
        }
    }

    fn dtype(&self) -> DType {
        match self {
            CpuStorage::F32(_) => DType::F32,
            CpuStorage::I32(_) => DType::I32,
        }
    }
}

/// Wraps f32 data as storage.
pub fn wrap_f32(data: Vec<f32>) -> StorageRef {
    add_live(data.len() * 4);
    Arc::new(CpuStorage::F32(RwLock::new(data)))
}

/// Wraps i32 data as storage.
pub fn wrap_i32(data: Vec<i32>) -> StorageRef {
    add_live(data.len() * 4);
    Arc::new(CpuStorage::I32(data))
}

fn cpu(storage: &StorageRef) -> &CpuStorage {
    storage
        .as_any()
        .downcast_ref::<CpuStorage>()
        .expect("a tensor from another device reached the CPU backend; move it with to_device()")
}

/// Read access to f32 data.
pub fn read_f32(storage: &StorageRef) -> RwLockReadGuard<'_, Vec<f32>> {
    match cpu(storage) {
        CpuStorage::F32(data) => data.read().expect("tensor lock poisoned"),
        CpuStorage::I32(_) => panic!("expected f32 storage, found i32"),
    }
}

/// Write access to f32 data (in-place updates).
pub fn write_f32(storage: &StorageRef) -> RwLockWriteGuard<'_, Vec<f32>> {
    match cpu(storage) {
        CpuStorage::F32(data) => data.write().expect("tensor lock poisoned"),
        CpuStorage::I32(_) => panic!("expected f32 storage, found i32"),
    }
}

/// The i32 data.
pub fn read_i32(storage: &StorageRef) -> &[i32] {
    match cpu(storage) {
        CpuStorage::I32(data) => data,
        CpuStorage::F32(_) => panic!("expected i32 storage, found f32"),
    }
}
