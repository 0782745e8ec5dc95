//! Checkpoints in safetensors: the model's parameters under their PyTorch names and
//! layouts (so `torch.nn.Module.load_state_dict` reads them), the optimizer's buffers
//! under `optimizer.`, and the training position as string metadata. Writes stream one
//! tensor at a time into a temporary file that is then renamed; loads validate
//! everything before changing anything.

mod atomic_file;
mod writer;

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use kiln_tensor::{Shape, Tensor};
use safetensors::tensor::{Dtype, SafeTensors};

use crate::optim::{Optimizer, OptimizerState};
use crate::{Module, NnError, Result};

/// Prefix of optimizer buffers in the file.
const OPTIMIZER_PREFIX: &str = "optimizer.";
/// Metadata key naming the optimizer kind.
const OPTIMIZER_KIND: &str = "kiln.optimizer";
/// Metadata key prefix of optimizer scalars.
const OPTIMIZER_SCALAR: &str = "kiln.optimizer.";

/// Saves `model` (and `optimizer`'s state, and `metadata` such as epoch/step/seed) to
/// `path` atomically: a crash leaves either the old file or the new one, never a torn
/// one. The same model, optimizer and metadata always give the same bytes, and the
/// file gets the usual permissions (0666 less the umask). A model or optimizer holding
/// NaN or infinity is not saved ([`NnError::NonFinite`]): the file at `path` keeps its
/// last finite state.
///
/// ```
/// use std::collections::BTreeMap;
/// use kiln_cpu::CpuDevice;
/// use kiln_nn::{checkpoint, Dense, Initializer, Module};
/// use kiln_tensor::Device;
///
/// let device = Device::cpu();
/// let model = Dense::new(&mut Initializer::new(&device, 1), 3, 2);
/// let path = std::env::temp_dir().join("kiln-doc-example.safetensors");
/// let meta = BTreeMap::from([("epoch".to_string(), "3".to_string())]);
/// checkpoint::save(&path, &model, None, &meta).unwrap();
///
/// let mut fresh = Dense::new(&mut Initializer::new(&device, 2), 3, 2);
/// let loaded = checkpoint::load(&path, &mut fresh, None).unwrap();
/// assert_eq!(loaded["epoch"], "3");
/// assert_eq!(fresh.weight().to_vec().unwrap(), model.weight().to_vec().unwrap());
/// ```
pub fn save(
    path: &Path,
    model: &dyn Module,
    optimizer: Option<&dyn Optimizer>,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let mut tensors: Vec<(String, Tensor)> = model.named_parameters();
    tensors.extend(model.named_buffers());
    let mut info = metadata.clone();
    if let Some(optimizer) = optimizer {
        let state = optimizer.state();
        info.insert(OPTIMIZER_KIND.into(), optimizer.kind().into());
        for (key, value) in state.scalars {
            info.insert(format!("{OPTIMIZER_SCALAR}{key}"), value);
        }
        tensors.extend(state.tensors.into_iter().map(|(name, t)| (format!("{OPTIMIZER_PREFIX}{name}"), t)));
    }
    let on_io = |source| NnError::Save { path: path.into(), source };
    atomic_file::write_atomically(path, on_io, |out| writer::write_safetensors(out, path, tensors, &info))
}

/// Fails unless a checkpoint can be written to `path` (creating its directory if
/// needed), without touching an existing file there: the check to run before training.
pub fn ensure_writable(path: &Path) -> Result<()> {
    atomic_file::ensure_writable(path).map_err(|source| NnError::Save { path: path.into(), source })
}

/// Loads a checkpoint into `model` (and `optimizer`, when given and the file has its
/// state) and returns the file's metadata. Every tensor's presence, dtype and shape is
/// checked first: on any error, nothing in `model` or `optimizer` has changed.
pub fn load(
    path: &Path,
    model: &mut dyn Module,
    optimizer: Option<&mut dyn Optimizer>,
) -> Result<BTreeMap<String, String>> {
    let bytes = fs::read(path).map_err(|source| NnError::Io { path: path.into(), source })?;
    load_bytes(&bytes, path, model, optimizer)
}

/// [`load`] from a checkpoint's bytes already in memory (e.g. read by one process and
/// sent to the others); `path` names the file in error messages.
pub fn load_bytes(
    bytes: &[u8],
    path: &Path,
    model: &mut dyn Module,
    optimizer: Option<&mut dyn Optimizer>,
) -> Result<BTreeMap<String, String>> {
    let bad = |reason: String| NnError::BadCheckpoint { path: path.into(), reason };
    let file = SafeTensors::deserialize(bytes)
        .map_err(|err| bad(format!("{err} (is the file truncated, or not a safetensors file?)")))?;
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|err| bad(err.to_string()))?;
    let metadata: BTreeMap<String, String> =
        header.metadata().clone().unwrap_or_default().into_iter().collect();

    let params = model.named_parameters();
    let buffers = model.named_buffers();
    let shapes: HashMap<&str, &Shape> =
        params.iter().chain(&buffers).map(|(n, t)| (n.as_str(), t.shape())).collect();
    let mut loaded: HashMap<String, Tensor> = HashMap::new();
    let buffer_names: Vec<&str> = buffers.iter().map(|(n, _)| n.as_str()).collect();
    for (name, tensor) in params.iter().chain(&buffers) {
        let data = if buffer_names.contains(&name.as_str()) {
            read_buffer(path, &file, name, tensor.shape())?
        } else {
            read_tensor(path, &file, name, tensor.shape())?
        };
        loaded.insert(name.clone(), Tensor::from_vec(tensor.shape().clone(), data, tensor.device()));
    }
    let mut state = OptimizerState::default();
    for name in file.names() {
        let Some(buffer) = name.strip_prefix(OPTIMIZER_PREFIX) else {
            if !shapes.contains_key(name) {
                return Err(NnError::UnexpectedTensor { path: path.into(), name: name.to_string() });
            }
            continue;
        };
        let owner = buffer.rsplit_once('.').map(|(param, _)| param).unwrap_or(buffer);
        let Some(shape) = shapes.get(owner) else {
            return Err(NnError::UnexpectedTensor { path: path.into(), name: name.to_string() });
        };
        let data = read_tensor(path, &file, name, shape)?;
        let device = params
            .iter()
            .chain(&buffers)
            .find(|(n, _)| n == owner)
            .map(|(_, t)| t.device().clone())
            .expect("every shape has its tensor");
        state.tensors.insert(buffer.to_string(), Tensor::from_vec((*shape).clone(), data, &device));
    }

    if let (Some(optimizer), Some(kind)) = (optimizer, metadata.get(OPTIMIZER_KIND)) {
        if kind != optimizer.kind() {
            return Err(bad(format!(
                "it holds {kind} optimizer state but this run uses {}; resume with the same optimizer",
                optimizer.kind()
            )));
        }
        state.scalars = metadata
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(OPTIMIZER_SCALAR).map(|k| (k.to_string(), v.clone())))
            .collect();
        optimizer.load_state(state)?;
    }
    model.visit_parameters_mut("", &mut |name, param| {
        if let Some(new) = loaded.remove(name) {
            *param = new.with_requires_grad();
        }
    });
    model.visit_buffers_mut("", &mut |name, buffer| {
        if let Some(new) = loaded.remove(name) {
            *buffer = new;
        }
    });
    Ok(metadata)
}

/// Reads buffer `name` as f32 values of `shape`: f32, or the integers PyTorch stores
/// counters in (`num_batches_tracked` is int64 there).
fn read_buffer(path: &Path, file: &SafeTensors<'_>, name: &str, shape: &Shape) -> Result<Vec<f32>> {
    match file.tensor(name) {
        Ok(view) if view.dtype() == Dtype::I64 && view.shape() == shape.dims() => Ok(view
            .data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
            .collect()),
        _ => read_tensor(path, file, name, shape),
    }
}

/// Reads tensor `name` as f32 values of `shape`, or says what is wrong with it.
fn read_tensor(path: &Path, file: &SafeTensors<'_>, name: &str, shape: &Shape) -> Result<Vec<f32>> {
    let owned = || (PathBuf::from(path), name.to_string());
    let view = file.tensor(name).map_err(|_| {
        let (path, name) = owned();
        NnError::MissingTensor { path, name }
    })?;
    if view.dtype() != Dtype::F32 {
        let (path, name) = owned();
        return Err(NnError::DTypeMismatch { path, name, found: format!("{:?}", view.dtype()) });
    }
    if view.shape() != shape.dims() {
        let (path, name) = owned();
        return Err(NnError::ShapeMismatch {
            path,
            name,
            expected: shape.clone(),
            found: Shape::from(view.shape()),
        });
    }
    Ok(view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}
