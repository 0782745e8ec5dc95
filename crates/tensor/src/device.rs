//! `Device`: a runtime handle to a backend. Backends plug in from their own crates
//! (`kiln-cpu`, `kiln-wgpu`), so the device is a value chosen at run time, not a type.

use std::fmt;
use std::sync::Arc;

use crate::{Backend, Result};

/// A handle to one backend instance. Cheap to clone; two handles are equal when they
/// point at the same backend instance. Backend crates add the constructors
/// (`kiln_cpu::CpuDevice::cpu`, `kiln_wgpu::WgpuDevice::wgpu`), so a program picks its
/// device when it runs:
///
/// ```
/// use kiln_cpu::CpuDevice;
/// use kiln_tensor::{Device, Tensor};
///
/// let shared = Device::cpu();
/// let own_pool = Device::cpu_with_threads(2).unwrap();
/// assert_ne!(shared, own_pool);
/// let t = Tensor::ones([3], &shared).to_device(&own_pool).unwrap();
/// assert_eq!(t.device(), &own_pool);
/// assert_eq!(t.to_vec().unwrap(), vec![1.0; 3]);
/// ```
#[derive(Clone)]
pub struct Device {
    backend: Arc<dyn Backend>,
}

impl Device {
    /// Wraps a backend. Backend crates call this (e.g. `kiln_cpu::CpuBackend`).
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Device { backend }
    }

    /// The backend's kernels.
    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    /// The backend's description, e.g. `cpu (2 threads)`.
    pub fn name(&self) -> String {
        self.backend.name()
    }

    /// Bytes held by tensors on this device right now.
    pub fn memory_in_use(&self) -> usize {
        self.backend.memory_in_use()
    }

    /// Waits for all queued work on the device and reports any device error.
    pub fn synchronize(&self) -> Result<()> {
        self.backend.synchronize()
    }
}

impl PartialEq for Device {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.backend, &other.backend)
    }
}

impl Eq for Device {}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Device({})", self.name())
    }
}
