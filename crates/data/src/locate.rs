//! Finding Fashion-MNIST on disk, or downloading it: an explicit directory, then
//! `KILN_DATA_DIR`, then the user cache, then Debian's `dataset-fashion-mnist`, then a
//! download into the cache, verified against pinned SHA-256 digests and written
//! atomically.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::sha256::sha256_hex;
use crate::{DataError, Result, http};

/// One file of the dataset and the SHA-256 of its *decompressed* bytes (the same for
/// every mirror and packaging, unlike the `.gz` bytes). Digests taken from Debian's
/// `dataset-fashion-mnist`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DatasetFile {
    /// File name, e.g. `train-images-idx3-ubyte.gz`.
    pub name: &'static str,
    /// SHA-256 of the decompressed contents, lowercase hex.
    pub sha256: &'static str,
}

/// The four Fashion-MNIST files.
pub const FASHION_MNIST_FILES: [DatasetFile; 4] = [
    DatasetFile {
        name: "train-images-idx3-ubyte.gz",
        sha256: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    },
    DatasetFile {
        name: "train-labels-idx1-ubyte.gz",
        sha256: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    },
    DatasetFile {
        name: "t10k-images-idx3-ubyte.gz",
        sha256: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    },
    DatasetFile {
        name: "t10k-labels-idx1-ubyte.gz",
        sha256: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
];

/// The public Fashion-MNIST mirror torchvision downloads from (plain HTTP; the pinned
/// digests make it safe).
pub const FASHION_MNIST_MIRROR: &str = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/";

/// Where Debian's `dataset-fashion-mnist` installs the files.
pub const DEBIAN_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// Where to look for the data, in order of preference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchPaths {
    /// A directory the user named (`--data-dir`): it must hold the files.
    pub explicit: Option<PathBuf>,
    /// `KILN_DATA_DIR`: it must hold the files.
    pub env: Option<PathBuf>,
    /// The user cache, `$XDG_CACHE_HOME/kiln/fashion-mnist` or `~/.cache/kiln/fashion-mnist`;
    /// downloads go here.
    pub cache: Option<PathBuf>,
    /// Debian's package location.
    pub system: PathBuf,
}

impl SearchPaths {
    /// The standard places, with `explicit` first when given.
    pub fn from_env(explicit: Option<&Path>) -> Self {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        let cache_root = var("XDG_CACHE_HOME").or_else(|| var("HOME").map(|home| home.join(".cache")));
        SearchPaths {
            explicit: explicit.map(Path::to_path_buf),
            env: var("KILN_DATA_DIR"),
            cache: cache_root.map(|root| root.join("kiln").join("fashion-mnist")),
            system: PathBuf::from(DEBIAN_DIR),
        }
    }
}

/// The names of `files` missing from `dir`.
fn missing_in(dir: &Path, files: &[DatasetFile]) -> Vec<&'static str> {
    files.iter().filter(|f| !dir.join(f.name).is_file()).map(|f| f.name).collect()
}

/// The directory holding the dataset: the explicit or environment directory if given
/// (an error if it lacks files), else the cache or the system directory, else a fresh
/// download from `mirror` into the cache.
pub fn locate_or_download(paths: &SearchPaths, mirror: &str, files: &[DatasetFile]) -> Result<PathBuf> {
    for (dir, what) in [(&paths.explicit, "--data-dir"), (&paths.env, "KILN_DATA_DIR")] {
        if let Some(dir) = dir {
            let missing = missing_in(dir, files);
            if !missing.is_empty() {
                return Err(DataError::Io {
                    path: dir.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!("{what} lacks {}", missing.join(", ")),
                    ),
                });
            }
            return Ok(dir.clone());
        }
    }
    let candidates: Vec<PathBuf> = paths.cache.iter().cloned().chain([paths.system.clone()]).collect();
    if let Some(dir) = candidates.iter().find(|dir| missing_in(dir, files).is_empty()) {
        return Ok(dir.clone());
    }
    let Some(cache) = &paths.cache else {
        let download =
            DataError::Download { url: mirror.into(), reason: "no cache directory (HOME is unset)".into() };
        return Err(DataError::NotFound { searched: candidates, download: Box::new(download) });
    };
    match download(mirror, cache, files) {
        Ok(()) => Ok(cache.clone()),
        Err(err) => Err(DataError::NotFound { searched: candidates, download: Box::new(err) }),
    }
}

/// Most bytes a downloaded file may inflate to (Fashion-MNIST's largest is 47 MB): a
/// corrupt or hostile download is stopped there instead of filling memory.
const MAX_DECOMPRESSED_BYTES: u64 = 256 << 20;

/// Downloads every file of `files` missing from `dir`, verifying each before it gets
/// its final name. A failed or corrupt download leaves no file behind.
pub fn download(mirror: &str, dir: &Path, files: &[DatasetFile]) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| DataError::Io { path: dir.into(), source })?;
    for file in files.iter().filter(|f| !dir.join(f.name).is_file()) {
        let url = format!("{}/{}", mirror.trim_end_matches('/'), file.name);
        let bytes = http::get(&url, &mut |received, total| show_progress(file.name, received, total))
            .map_err(|reason| DataError::Download { url: url.clone(), reason })?;
        eprintln!();
        let target = dir.join(file.name);
        let partial = dir.join(format!("{}.part", file.name));
        let io = |source| DataError::Io { path: partial.clone(), source };
        let mut out = std::fs::File::create(&partial).map_err(io)?;
        out.write_all(&bytes).and_then(|()| out.sync_all()).map_err(io)?;
        let contents = crate::idx::read_maybe_gzip(&partial, MAX_DECOMPRESSED_BYTES);
        let verdict = contents.and_then(|data| {
            let found = sha256_hex(&data);
            if found == file.sha256 {
                Ok(())
            } else {
                Err(DataError::HashMismatch { url: url.clone(), expected: file.sha256.into(), found })
            }
        });
        match verdict {
            Ok(()) => std::fs::rename(&partial, &target).map_err(io)?,
            Err(err) => {
                let _ = std::fs::remove_file(&partial);
                return Err(err);
            }
        }
    }
    Ok(())
}

/// A one-line progress bar on stderr.
fn show_progress(name: &str, received: u64, total: Option<u64>) {
    let mb = |b: u64| b as f64 / 1e6;
    match total {
        Some(total) if total > 0 => {
            let done = (received * 30 / total) as usize;
            eprint!(
                "\rdownloading {name} [{}{}] {:.1}/{:.1} MB",
                "#".repeat(done),
                " ".repeat(30 - done.min(30)),
                mb(received),
                mb(total)
            );
        }
        _ => eprint!("\rdownloading {name} {:.1} MB", mb(received)),
    }
}
