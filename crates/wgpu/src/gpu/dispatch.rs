//! Recording work: storage for tensors, dispatches with their parameter blocks and
//! bindings, copies, and submitting what is recorded.

use std::sync::Arc;

use kiln_tensor::{DType, StorageRef};

use super::{ARENA_BYTES, Gpu, Recorder, gpu_storage};
use crate::buffer_pool::GpuStorage;
use crate::kernels::{Kernel, PARAMS_SIZE};

impl Gpu {
    /// Fresh storage for `len` elements of `dtype` (contents unspecified).
    pub fn alloc(&self, len: usize, dtype: DType, op: &str) -> StorageRef {
        let bytes = (len.max(1) * 4) as u64;
        if bytes > self.max_binding {
            self.errors.lock().expect("error lock").push(format!(
                "{op}: a tensor of {bytes} bytes exceeds this device's largest storage binding ({} bytes); \
                 use a smaller batch",
                self.max_binding
            ));
        }
        Arc::new(GpuStorage::new(
            self.buffers.acquire(bytes.min(self.max_binding)),
            len,
            dtype,
            &self.buffers,
        ))
    }

    /// Copies host bytes into fresh storage.
    pub fn upload(&self, bytes: &[u8], len: usize, dtype: DType) -> StorageRef {
        let storage = self.alloc(len, dtype, "upload");
        let mut recorder = self.recorder.lock().expect("recorder lock");
        self.submit(&mut recorder);
        if !bytes.is_empty() {
            self.queue.write_buffer(gpu_storage(&storage).buffer(), 0, bytes);
        }
        storage
    }

    /// Records one dispatch of `kernel` with the parameter block `params` (the kernel's
    /// struct from `params.rs`), storage `bindings` (`None` for unused slots) and
    /// workgroup counts `groups`.
    pub fn dispatch<P: bytemuck::Pod>(
        &self,
        kernel: Kernel,
        op: &str,
        params: &P,
        bindings: &[Option<&StorageRef>],
        groups: [u32; 3],
    ) {
        let started = std::time::Instant::now();
        let compiled = self.kernels.get(&self.device, kernel);
        let mut recorder = self.recorder.lock().expect("recorder lock");
        if recorder.params.len() as u64 + PARAMS_SIZE > ARENA_BYTES {
            self.submit(&mut recorder);
        }
        let offset = recorder.params.len() as u32;
        let bytes = bytemuck::bytes_of(params);
        assert!(
            bytes.len() as u64 <= PARAMS_SIZE,
            "{kernel:?}'s parameter block exceeds {PARAMS_SIZE} bytes"
        );
        let mut block = vec![0u8; PARAMS_SIZE as usize];
        block[..bytes.len()].copy_from_slice(bytes);
        recorder.params.extend_from_slice(&block);
        let arena = &recorder.arenas[recorder.current];
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: arena,
                offset: 0,
                size: wgpu::BufferSize::new(PARAMS_SIZE),
            }),
        }];
        let declared = kernel.bindings().len();
        // A binding set fills every slot; an SGD group smaller than its kernel leaves the
        // rest to placeholders.
        assert!(
            bindings.len() <= declared,
            "{op}: {kernel:?} declares {declared} bindings, got {}",
            bindings.len()
        );
        for i in 0..declared {
            let buffer = match bindings.get(i).copied().flatten() {
                Some(storage) => gpu_storage(storage).buffer(),
                None => &self.dummies[i],
            };
            entries
                .push(wgpu::BindGroupEntry { binding: i as u32 + 1, resource: buffer.as_entire_binding() });
        }
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(op),
            layout: &compiled.layout,
            entries: &entries,
        });
        let stamps = recorder.window.as_mut().and_then(|window| window.stamp(kernel.family()));
        let timestamp_writes = self.timestamps.as_ref().zip(stamps).map(|(queries, [begin, end])| {
            wgpu::ComputePassTimestampWrites {
                query_set: &queries.set,
                beginning_of_pass_write_index: Some(begin),
                end_of_pass_write_index: Some(end),
            }
        });
        let encoder = self.encoder(&mut recorder);
        let mut pass =
            encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some(op), timestamp_writes });
        pass.set_pipeline(&compiled.pipeline);
        pass.set_bind_group(0, &bind_group, &[offset]);
        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        drop(pass);
        recorder.counters.dispatches += 1;
        recorder.counters.host_nanos += started.elapsed().as_nanos() as u64;
    }

    /// Records a copy of `bytes` bytes from `src` to `dst`.
    pub fn copy(&self, src: &StorageRef, dst: &StorageRef, bytes: u64) {
        let mut recorder = self.recorder.lock().expect("recorder lock");
        let encoder = self.encoder(&mut recorder);
        encoder.copy_buffer_to_buffer(gpu_storage(src).buffer(), 0, gpu_storage(dst).buffer(), 0, bytes);
    }

    /// Records a copy of `len` f32s from `src`, starting at element `from`, to the start
    /// of `dst`.
    pub fn copy_f32s(&self, src: &StorageRef, from: usize, dst: &StorageRef, len: usize) {
        self.copy_f32_range(src, from, dst, 0, len);
    }

    /// Records a copy of `len` f32s from the start of `src` to `dst` at element `to`.
    pub fn copy_f32s_to(&self, src: &StorageRef, dst: &StorageRef, to: usize, len: usize) {
        self.copy_f32_range(src, 0, dst, to, len);
    }

    fn copy_f32_range(&self, src: &StorageRef, from: usize, dst: &StorageRef, to: usize, len: usize) {
        let mut recorder = self.recorder.lock().expect("recorder lock");
        let encoder = self.encoder(&mut recorder);
        let (src_buffer, dst_buffer) = (gpu_storage(src).buffer(), gpu_storage(dst).buffer());
        encoder.copy_buffer_to_buffer(src_buffer, 4 * from as u64, dst_buffer, 4 * to as u64, 4 * len as u64);
    }

    pub(super) fn encoder<'r>(&self, recorder: &'r mut Recorder) -> &'r mut wgpu::CommandEncoder {
        recorder.encoder.get_or_insert_with(|| {
            self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("kiln step") })
        })
    }

    /// Submits what is recorded, with its parameter arena.
    pub(super) fn submit(&self, recorder: &mut Recorder) -> Option<wgpu::SubmissionIndex> {
        let encoder = recorder.encoder.take()?;
        let started = std::time::Instant::now();
        if !recorder.params.is_empty() {
            self.queue.write_buffer(&recorder.arenas[recorder.current], 0, &recorder.params);
        }
        let index = self.queue.submit([encoder.finish()]);
        recorder.params.clear();
        recorder.current ^= 1;
        recorder.counters.submits += 1;
        recorder.counters.host_nanos += started.elapsed().as_nanos() as u64;
        Some(index)
    }
}
