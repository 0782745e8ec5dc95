//! Helpers shared by the binary's end-to-end tests: the dataset, scratch directories,
//! metrics fields and checkpoint tensors.

// Each test file uses its own subset of the helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use safetensors::tensor::SafeTensors;

/// The binary under test.
pub const BINARY: &str = env!("CARGO_BIN_EXE_alexnet-example");

/// The dataset directory, or `None` (with the reason printed) outside CI.
pub fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("KILN_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(kiln_data_debian_dir()));
    if dir.join("train-images-idx3-ubyte.gz").is_file() {
        return Some(dir);
    }
    assert!(std::env::var_os("CI").is_none(), "CI must provide Fashion-MNIST in {}", dir.display());
    eprintln!("skipping: no Fashion-MNIST in {}; apt-get install dataset-fashion-mnist", dir.display());
    None
}

fn kiln_data_debian_dir() -> &'static str {
    "/usr/share/datasets/fashion-mnist"
}

/// A scratch directory that is removed with everything in it when dropped (a test's
/// checkpoints are hundreds of megabytes; left behind, a few test runs fill a disk).
pub struct ScratchDir(tempfile::TempDir);

impl std::ops::Deref for ScratchDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<Path> for ScratchDir {
    fn as_ref(&self) -> &Path {
        self.0.path()
    }
}

/// A fresh scratch directory for `test`, named after it.
pub fn temp_dir(test: &str) -> ScratchDir {
    ScratchDir(tempfile::Builder::new().prefix(&format!("kiln-alexnet-{test}-")).tempdir().unwrap())
}

/// The number after `"key": ` in a JSON line.
pub fn field(line: &str, key: &str) -> f64 {
    let start =
        line.find(&format!("\"{key}\": ")).unwrap_or_else(|| panic!("no {key} in {line}")) + key.len() + 4;
    line[start..].split([',', '}']).next().unwrap().trim().parse().unwrap()
}

/// Every tensor of a checkpoint, as raw bytes, by name.
pub fn tensors(path: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let mut all: Vec<(String, Vec<u8>)> =
        file.tensors().into_iter().map(|(n, v)| (n, v.data().to_vec())).collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

/// The metadata entry `key` of a checkpoint.
pub fn saved_metadata(path: &Path, key: &str) -> String {
    let bytes = std::fs::read(path).unwrap();
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    header.metadata().as_ref().unwrap()[key].clone()
}
