//! Checkpoints: a bit-exact round trip, optimizer state, and every loading error, each
//! leaving the model untouched.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln_cpu::CpuDevice;
use kiln_nn::{
    Conv2d, Dense, Flatten, Initializer, Mode, Module, Optimizer, ReLU, Sequential, Sgd, checkpoint,
};
use kiln_tensor::{Device, Normal, Tensor};
use safetensors::tensor::{Dtype, TensorView};

fn small_cnn(seed: u64) -> Sequential {
    let mut init = Initializer::new(&Device::cpu(), seed);
    let features = Sequential::new().push(Conv2d::new(&mut init, 1, 3, 3).with_padding(1)).push(ReLU);
    let classifier = Sequential::new().push(Flatten).push(Dense::new(&mut init, 3 * 5 * 5, 4));
    Sequential::new().push_named("features", features).push_named("classifier", classifier)
}

/// A file path `name` in a scratch directory that is removed when the path is dropped.
struct ScratchFile {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for ScratchFile {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for ScratchFile {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

fn temp_path(name: &str) -> ScratchFile {
    let dir = tempfile::Builder::new().prefix("kiln-nn-tests-").tempdir().unwrap();
    ScratchFile { path: dir.path().join(name), _dir: dir }
}

fn values(model: &dyn Module) -> Vec<Vec<f32>> {
    model.named_parameters().iter().map(|(_, t)| t.to_vec().unwrap()).collect()
}

fn write_raw(path: &Path, tensors: Vec<RawTensor<'_>>) {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.to_string(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

/// Names of files in `path`'s directory that look like temporary files of `path`.
fn temporary_files(path: &Path) -> Vec<String> {
    let stem = path.file_name().unwrap().to_string_lossy().into_owned();
    std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != &stem && name.contains(&stem))
        .collect()
}

#[test]
fn round_trip_is_bit_exact_with_the_same_output() {
    let device = Device::cpu();
    let model = small_cnn(1);
    let path = temp_path("round_trip.safetensors");
    let meta =
        BTreeMap::from([("epoch".to_string(), "2".to_string()), ("step".to_string(), "17".to_string())]);
    checkpoint::save(&path, &model, None, &meta).unwrap();
    assert_eq!(temporary_files(&path), Vec::<String>::new(), "the temporary file is renamed away");

    let mut restored = small_cnn(2);
    assert_ne!(values(&restored), values(&model));
    let loaded = checkpoint::load(&path, &mut restored, None).unwrap();
    assert_eq!(loaded.get("epoch").map(String::as_str), Some("2"));
    let bits = |m: &dyn Module| values(m).concat().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&restored), bits(&model));
    let x = Tensor::randn([2, 1, 5, 5], 3, &device);
    assert_eq!(
        restored.forward(&x, Mode::Eval).to_vec().unwrap(),
        model.forward(&x, Mode::Eval).to_vec().unwrap()
    );
}

#[test]
fn optimizer_state_round_trips() {
    let device = Device::cpu();
    let model = small_cnn(1);
    let mut sgd = Sgd::new(0.1).with_momentum(0.9);
    let x = Tensor::randn([2, 1, 5, 5], 3, &device);
    let labels = Tensor::from_i32([2], vec![1, 3], &device);
    sgd.step(&model, &model.forward(&x, Mode::Eval).cross_entropy(&labels).backward());
    let path = temp_path("optimizer.safetensors");
    checkpoint::save(&path, &model, Some(&sgd), &BTreeMap::new()).unwrap();

    let mut restored_model = small_cnn(1);
    let mut restored_sgd = Sgd::new(0.1).with_momentum(0.9);
    checkpoint::load(&path, &mut restored_model, Some(&mut restored_sgd)).unwrap();
    let buffers =
        |s: &Sgd| s.state().tensors.iter().map(|(k, v)| (k.clone(), v.to_vec().unwrap())).collect::<Vec<_>>();
    assert_eq!(buffers(&restored_sgd), buffers(&sgd));
    assert_eq!(buffers(&sgd).len(), 4);

    let err = checkpoint::load(&path, &mut small_cnn(1), Some(&mut kiln_nn::Adam::new(0.1))).unwrap_err();
    assert!(err.to_string().contains("it holds sgd optimizer state but this run uses adam"), "{err}");
}

/// Loads `path` into a fresh model, expects an error containing `message`, and checks
/// the model did not change.
fn expect_load_error(path: &Path, message: &str) {
    let mut model = small_cnn(5);
    let before = values(&model);
    let err = checkpoint::load(path, &mut model, None).unwrap_err().to_string();
    assert!(err.contains(message), "error `{err}` should contain `{message}`");
    assert!(err.contains(&path.display().to_string()), "error `{err}` should name the file");
    assert_eq!(values(&model), before, "a failed load must not change the model");
}

type RawTensor<'a> = (&'a str, Dtype, Vec<usize>, Vec<u8>);

fn as_raw(list: &[(String, Vec<usize>, Vec<u8>)]) -> Vec<RawTensor<'_>> {
    list.iter().map(|(n, s, b)| (n.as_str(), Dtype::F32, s.clone(), b.clone())).collect()
}

fn model_tensors(model: &dyn Module) -> Vec<(String, Vec<usize>, Vec<u8>)> {
    model
        .named_parameters()
        .into_iter()
        .map(|(n, t)| {
            (n, t.dims().to_vec(), t.to_vec().unwrap().iter().flat_map(|v| v.to_le_bytes()).collect())
        })
        .collect()
}

#[test]
fn missing_unexpected_misshapen_and_mistyped_tensors_are_named() {
    let good = model_tensors(&small_cnn(1));

    let path = temp_path("missing.safetensors");
    write_raw(&path, as_raw(&good[1..]));
    expect_load_error(&path, "missing tensor `features.0.weight` that the model needs");

    let path = temp_path("unexpected.safetensors");
    let mut raw = as_raw(&good);
    raw.push(("features.9.weight", Dtype::F32, vec![1], vec![0; 4]));
    write_raw(&path, raw);
    expect_load_error(&path, "unexpected tensor `features.9.weight`");

    let path = temp_path("shape.safetensors");
    let mut raw = as_raw(&good);
    raw[2] = ("classifier.1.weight", Dtype::F32, vec![4, 74], vec![0; 4 * 74 * 4]);
    write_raw(&path, raw);
    expect_load_error(&path, "tensor `classifier.1.weight` has shape [4, 74] but the model expects [4, 75]");

    let path = temp_path("dtype.safetensors");
    let mut raw = as_raw(&good);
    raw[1] = ("features.0.bias", Dtype::F64, vec![3], vec![0; 24]);
    write_raw(&path, raw);
    expect_load_error(&path, "tensor `features.0.bias` is F64, expected F32");
}

#[test]
fn truncated_and_foreign_files_are_rejected() {
    let path = temp_path("whole.safetensors");
    checkpoint::save(&path, &small_cnn(1), None, &BTreeMap::new()).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let cut = temp_path("truncated.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() - 100]).unwrap();
    expect_load_error(&cut, "is not a valid Kiln checkpoint");

    let foreign = temp_path("foreign.safetensors");
    std::fs::write(&foreign, b"PK\x03\x04 this is a zip file, not safetensors").unwrap();
    expect_load_error(&foreign, "is not a valid Kiln checkpoint");

    let err = checkpoint::load(&temp_path("absent.safetensors"), &mut small_cnn(1), None).unwrap_err();
    assert!(err.to_string().contains("absent.safetensors"), "{err}");
}

#[test]
fn saving_is_byte_reproducible_with_ordinary_permissions() {
    let model = small_cnn(1);
    let mut sgd = Sgd::new(0.1).with_momentum(0.9);
    let x = Tensor::randn([2, 1, 5, 5], 3, &Device::cpu());
    let labels = Tensor::from_i32([2], vec![1, 3], &Device::cpu());
    sgd.step(&model, &model.forward(&x, Mode::Eval).cross_entropy(&labels).backward());
    let meta: BTreeMap<String, String> =
        (0..20).map(|i| (format!("key{i}"), format!("value \"{i}\"\n"))).collect();
    let (a, b) = (temp_path("same-a.safetensors"), temp_path("same-b.safetensors"));
    checkpoint::save(&a, &model, Some(&sgd), &meta).unwrap();
    checkpoint::save(&b, &model, Some(&sgd), &meta).unwrap();
    assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(), "identical saves give identical bytes");
    let loaded = checkpoint::load(&a, &mut small_cnn(2), None).unwrap();
    assert_eq!(loaded["key3"], "value \"3\"\n", "metadata strings survive escaping");

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&a).unwrap().permissions().mode() & 0o777;
        let umask_allows = |bits: u32| {
            let probe = temp_path("umask-probe");
            std::fs::write(&probe, b"").unwrap();
            std::fs::metadata(&probe).unwrap().permissions().mode() & bits
        };
        assert_eq!(mode, umask_allows(0o666), "a checkpoint is created like any other file, got {mode:o}");
    }
}

#[test]
fn a_model_holding_nan_is_not_saved_and_the_old_file_stays() {
    let path = temp_path("finite.safetensors");
    let model = small_cnn(1);
    checkpoint::save(&path, &model, None, &BTreeMap::new()).unwrap();
    let before = std::fs::read(&path).unwrap();

    let mut diverged = small_cnn(1);
    diverged.visit_parameters_mut("", &mut |name, param| {
        if name == "classifier.1.bias" {
            let mut values = param.to_vec().unwrap();
            values[2] = f32::NAN;
            *param = Tensor::from_vec(param.shape().clone(), values, param.device());
        }
    });
    let err = checkpoint::save(&path, &diverged, None, &BTreeMap::new()).unwrap_err().to_string();
    assert!(err.contains("`classifier.1.bias` holds NaN or infinite values"), "{err}");
    assert!(std::fs::read(&path).unwrap() == before, "the last finite checkpoint is untouched");
    assert_eq!(temporary_files(&path), Vec::<String>::new(), "nothing is left behind");
}

#[test]
fn save_errors_say_saving_failed_and_leave_nothing_behind() {
    let err = checkpoint::save(Path::new("/proc/kiln.safetensors"), &small_cnn(1), None, &BTreeMap::new())
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("cannot save the checkpoint /proc/kiln.safetensors"), "{err}");
    assert!(!err.contains("not a valid"), "{err}");
    let err = checkpoint::ensure_writable(Path::new("/proc/kiln.safetensors")).unwrap_err().to_string();
    assert!(err.starts_with("cannot save the checkpoint /proc/kiln.safetensors"), "{err}");

    let path = temp_path("probe.safetensors");
    checkpoint::ensure_writable(&path).unwrap();
    assert!(!path.exists() && temporary_files(&path).is_empty(), "the check leaves no file");
}

#[test]
fn a_directory_at_the_checkpoint_path_is_refused_by_the_writability_check() {
    let dir = temp_path("a-directory.safetensors");
    std::fs::create_dir_all(&dir).unwrap();
    let err = checkpoint::ensure_writable(&dir).unwrap_err().to_string();
    assert!(err.starts_with(&format!("cannot save the checkpoint {}", dir.display())), "{err}");
    assert!(err.contains("is a directory"), "{err}");
    assert!(temporary_files(&dir).is_empty(), "the check leaves no file");
}

#[test]
fn temporary_files_of_dead_writers_are_cleaned_and_concurrent_saves_both_succeed() {
    let path = temp_path("shared.safetensors");
    let dead = path.with_file_name(".shared.safetensors.kiln-tmp-4000000000-1f");
    std::fs::write(&dead, vec![0u8; 1000]).unwrap();
    let model = small_cnn(1);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| checkpoint::save(&path, &model, None, &BTreeMap::new()).unwrap());
        }
    });
    assert!(!dead.exists(), "a dead process's temporary file is removed");
    assert_eq!(temporary_files(&path), Vec::<String>::new());
    checkpoint::load(&path, &mut small_cnn(2), None).unwrap();
}

#[test]
fn batch_norm_buffers_are_saved_and_loaded_under_pytorchs_names() {
    let device = Device::cpu();
    let with_norm = || Sequential::new().push(kiln_nn::BatchNorm2d::new(&device, 2)).push(ReLU);
    let model = with_norm();
    model.forward(&Tensor::normal([4, 2, 3, 3], Normal { mean: 1.0, std: 2.0 }, 7, &device), Mode::train(0));
    let path = temp_path("norm.safetensors");
    checkpoint::save(&path, &model, None, &BTreeMap::new()).unwrap();
    let names: Vec<String> = model.named_buffers().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["0.running_mean", "0.running_var", "0.num_batches_tracked"]);

    let mut fresh = with_norm();
    checkpoint::load(&path, &mut fresh, None).unwrap();
    for ((name, saved), (_, loaded)) in model.named_buffers().iter().zip(fresh.named_buffers()) {
        assert_eq!(saved.to_vec().unwrap(), loaded.to_vec().unwrap(), "{name}");
    }
    assert_eq!(fresh.named_buffers()[2].1.to_vec().unwrap(), [1.0], "one training batch tracked");
    let x = Tensor::randn([2, 2, 3, 3], 8, &device);
    assert_eq!(
        fresh.forward(&x, Mode::Eval).to_vec().unwrap(),
        model.forward(&x, Mode::Eval).to_vec().unwrap(),
        "evaluation uses the loaded running statistics"
    );
}
