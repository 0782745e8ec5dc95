//! Checkpoints in safetensors: the model's parameters under their PyTorch names and
//! layouts (so `torch.nn.Module.load_state_dict` reads them), the optimizer's buffers
//! under `optimizer.`, and the training position as string metadata. Writes stream one
//! tensor at a time into a temporary file that is then renamed; loads validate
//! everything before changing anything.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use kiln_tensor::{Shape, Tensor};
use safetensors::tensor::{Dtype, SafeTensors, View};

use crate::optim::{Optimizer, OptimizerState};
use crate::{Module, NnError, Result};

/// Prefix of optimizer buffers in the file.
const OPTIMIZER_PREFIX: &str = "optimizer.";
/// Metadata key naming the optimizer kind.
const OPTIMIZER_KIND: &str = "kiln.optimizer";
/// Metadata key prefix of optimizer scalars.
const OPTIMIZER_SCALAR: &str = "kiln.optimizer.";

/// Saves `model` (and `optimizer`'s state, and `metadata` such as epoch/step/seed) to
/// `path` atomically: a crash leaves either the old file or the new one.
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
    let mut info: HashMap<String, String> = metadata.clone().into_iter().collect();
    if let Some(optimizer) = optimizer {
        let state = optimizer.state();
        info.insert(OPTIMIZER_KIND.into(), optimizer.kind().into());
        for (key, value) in state.scalars {
            info.insert(format!("{OPTIMIZER_SCALAR}{key}"), value);
        }
        tensors.extend(state.tensors.into_iter().map(|(name, t)| (format!("{OPTIMIZER_PREFIX}{name}"), t)));
    }
    let failure = RefCell::new(None);
    let views: Vec<(String, StreamedTensor)> = tensors
        .into_iter()
        .map(|(name, tensor)| {
            let dims = tensor.dims().to_vec();
            (name, StreamedTensor { tensor, dims, failure: &failure })
        })
        .collect();
    write_atomically(path, |tmp| {
        let written = safetensors::serialize_to_file(views, Some(info), tmp);
        if let Some(err) = failure.take() {
            return Err(err);
        }
        written.map_err(|err| NnError::BadCheckpoint { path: path.into(), reason: err.to_string() })
    })
}

/// A tensor handed to the safetensors writer, read from its device only when the
/// writer reaches it: one tensor's bytes are in memory at a time, not the whole
/// checkpoint.
struct StreamedTensor<'a> {
    tensor: Tensor,
    dims: Vec<usize>,
    /// The first read-back error; the writer cannot return one itself.
    failure: &'a RefCell<Option<NnError>>,
}

impl View for StreamedTensor<'_> {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }

    fn shape(&self) -> &[usize] {
        &self.dims
    }

    fn data(&self) -> Cow<'_, [u8]> {
        match self.tensor.to_vec() {
            Ok(values) => Cow::Owned(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
            Err(err) => {
                self.failure.borrow_mut().get_or_insert(err.into());
                Cow::Owned(vec![0; self.data_len()])
            }
        }
    }

    fn data_len(&self) -> usize {
        self.tensor.shape().numel() * 4
    }
}

/// Has `write` fill a temporary file beside `path`, syncs it, and renames it over
/// `path`; on any error the temporary file is removed and `path` is untouched.
fn write_atomically(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let io = |source| NnError::Io { path: path.into(), source };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(io)?;
    }
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let written = write(&tmp).and_then(|()| fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(io));
    if let Err(err) = written {
        // Best effort: the error being returned matters more than a stray temporary file.
        let _ = fs::remove_file(&tmp);
        return Err(err);
    }
    fs::rename(&tmp, path).map_err(io)
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
    let bad = |reason: String| NnError::BadCheckpoint { path: path.into(), reason };
    let file = SafeTensors::deserialize(&bytes)
        .map_err(|err| bad(format!("{err} (is the file truncated, or not a safetensors file?)")))?;
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|err| bad(err.to_string()))?;
    let metadata: BTreeMap<String, String> =
        header.metadata().clone().unwrap_or_default().into_iter().collect();

    let params = model.named_parameters();
    let shapes: HashMap<&str, &Shape> = params.iter().map(|(n, t)| (n.as_str(), t.shape())).collect();
    let mut loaded: HashMap<String, Tensor> = HashMap::new();
    for (name, param) in &params {
        let data = read_tensor(path, &file, name, param.shape())?;
        loaded.insert(name.clone(), Tensor::from_vec(param.shape().clone(), data, param.device()));
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
        let device =
            params.iter().find(|(n, _)| n == owner).map(|(_, t)| t.device().clone()).expect("owner exists");
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
    Ok(metadata)
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
