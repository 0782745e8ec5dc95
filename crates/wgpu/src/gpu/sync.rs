//! Waiting for the GPU: synchronizing, the errors wgpu reported, and reading storage
//! back through staging buffers.

use kiln_tensor::{Result, StorageRef};

use super::{Gpu, device_error, gpu_storage};

impl Gpu {
    /// Submits everything recorded, waits for the device, and reports its errors.
    pub fn synchronize(&self) -> Result<()> {
        let index = self.submit(&mut self.recorder.lock().expect("recorder lock"));
        let waited = self.wait(index);
        // A submission that failed validation also fails the wait; the error wgpu
        // reported for it says why, so it comes first.
        self.take_errors()?;
        waited
    }

    /// Submits the recorded work and waits for the GPU to finish it, leaving any errors
    /// wgpu reported for the next `synchronize` or read to return (the autotuner's
    /// clock: timing must not swallow a user's error).
    pub fn wait_idle(&self) -> Result<()> {
        let index = self.submit(&mut self.recorder.lock().expect("recorder lock"));
        self.wait(index)
    }

    pub(super) fn wait(&self, index: Option<wgpu::SubmissionIndex>) -> Result<()> {
        self.device
            .poll(wgpu::PollType::Wait { submission_index: index, timeout: None })
            .map(|_| ())
            .map_err(|err| device_error(format!("waiting for the GPU failed: {err}")))
    }

    /// The errors wgpu reported since the last call, as one error.
    pub(super) fn take_errors(&self) -> Result<()> {
        let errors = std::mem::take(&mut *self.errors.lock().expect("error lock"));
        if errors.is_empty() { Ok(()) } else { Err(device_error(errors.join("; "))) }
    }

    /// Copies `storage` back to the host.
    pub fn read(&self, storage: &StorageRef) -> Result<Vec<u8>> {
        let source = gpu_storage(storage);
        let bytes = source.bytes();
        if bytes == 0 {
            return self.synchronize().map(|()| Vec::new());
        }
        let staging = self.staging.acquire(bytes);
        let index = {
            let mut recorder = self.recorder.lock().expect("recorder lock");
            self.encoder(&mut recorder).copy_buffer_to_buffer(source.buffer(), 0, &staging, 0, bytes);
            self.submit(&mut recorder)
        };
        self.map_staging(staging, bytes, index, true)
    }

    /// Waits for submission `index`, then maps `staging` and copies its first `bytes`
    /// out; with `report_errors`, errors wgpu reported are returned first.
    pub(super) fn map_staging(
        &self,
        staging: wgpu::Buffer,
        bytes: u64,
        index: Option<wgpu::SubmissionIndex>,
        report_errors: bool,
    ) -> Result<Vec<u8>> {
        let (sender, receiver) = std::sync::mpsc::channel();
        staging.slice(0..bytes).map_async(wgpu::MapMode::Read, move |result| {
            let _ = sender.send(result);
        });
        self.wait(index)?;
        if report_errors {
            self.take_errors()?;
        }
        receiver
            .recv()
            .map_err(|_| device_error("the GPU never answered a read"))?
            .map_err(|err| device_error(format!("reading from the GPU failed: {err}")))?;
        let data = staging
            .slice(0..bytes)
            .get_mapped_range()
            .map_err(|err| device_error(format!("reading from the GPU failed: {err}")))?
            .to_vec();
        staging.unmap();
        self.staging.release(staging);
        Ok(data)
    }
}
