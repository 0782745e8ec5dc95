//! `CpuStorage`: tensor memory in host RAM. Each storage counts its bytes in its
//! device's [`HostMemory`] and hands its buffer (f32 or i32) back to that device's
//! cache when it is dropped.

use std::any::Any;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use kiln_tensor::{DType, Storage, StorageRef};

use crate::memory::HostMemory;

/// The values of one tensor. f32 data sits behind a lock because optimizers update
/// parameters in place; i32 data (labels, indices) is immutable.
#[derive(Debug)]
enum Values {
    /// Values and gradients.
    F32(RwLock<Vec<f32>>),
    /// Labels and indices.
    I32(Vec<i32>),
}

/// Host memory of one tensor, owned by one device.
#[derive(Debug)]
pub struct CpuStorage {
    values: Values,
    memory: Arc<HostMemory>,
}

impl Drop for CpuStorage {
    fn drop(&mut self) {
        self.memory.remove_live(self.len() * 4);
        match &mut self.values {
            Values::F32(data) => {
                let data = data.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner());
                self.memory.recycle(std::mem::take(data));
            }
            Values::I32(data) => self.memory.recycle_i32(std::mem::take(data)),
        }
    }
}

impl Storage for CpuStorage {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn len(&self) -> usize {
        match &self.values {
            Values::F32(data) => data.read().expect("tensor lock poisoned").len(),
            Values::I32(data) => data.len(),
        }
    }

    fn dtype(&self) -> DType {
        match self.values {
            Values::F32(_) => DType::F32,
            Values::I32(_) => DType::I32,
        }
    }
}

/// Wraps f32 data as storage of the device owning `memory`.
pub fn wrap_f32(memory: &Arc<HostMemory>, data: Vec<f32>) -> StorageRef {
    memory.add_live(data.len() * 4);
    Arc::new(CpuStorage { values: Values::F32(RwLock::new(data)), memory: memory.clone() })
}

/// Wraps i32 data as storage of the device owning `memory`.
pub fn wrap_i32(memory: &Arc<HostMemory>, data: Vec<i32>) -> StorageRef {
    memory.add_live(data.len() * 4);
    Arc::new(CpuStorage { values: Values::I32(data), memory: memory.clone() })
}

fn cpu(storage: &StorageRef) -> &CpuStorage {
    storage
        .as_any()
        .downcast_ref::<CpuStorage>()
        .expect("a tensor from another device reached the CPU backend; move it with to_device()")
}

/// Read access to f32 data.
pub fn read_f32(storage: &StorageRef) -> RwLockReadGuard<'_, Vec<f32>> {
    match &cpu(storage).values {
        Values::F32(data) => data.read().expect("tensor lock poisoned"),
        Values::I32(_) => panic!("expected f32 storage, found i32"),
    }
}

/// Write access to f32 data (in-place updates).
pub fn write_f32(storage: &StorageRef) -> RwLockWriteGuard<'_, Vec<f32>> {
    match &cpu(storage).values {
        Values::F32(data) => data.write().expect("tensor lock poisoned"),
        Values::I32(_) => panic!("expected f32 storage, found i32"),
    }
}

/// The i32 data.
pub fn read_i32(storage: &StorageRef) -> &[i32] {
    match &cpu(storage).values {
        Values::I32(data) => data,
        Values::F32(_) => panic!("expected i32 storage, found f32"),
    }
}
