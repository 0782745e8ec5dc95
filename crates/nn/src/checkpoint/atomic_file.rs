//! Replacing a file so that a crash never leaves a torn one: the new contents go into a
//! temporary sibling with a recognizable, unique name (`.NAME.kiln-tmp-PID-NONCE`),
//! which is synced and then renamed over the target. Temporary files left behind by
//! processes that died (kill -9 during a save) are removed by the next save to the same
//! path; on systems without `/proc` they are left alone, since there is no cheap way to
//! tell a dead writer from a live one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// What every temporary name for `path` starts with.
fn temp_prefix(path: &Path) -> String {
    format!(".{}.kiln-tmp-", path.file_name().unwrap_or_default().to_string_lossy())
}

/// Creates a new, uniquely named temporary file beside `path` (created with the usual
/// permissions, 0666 less the umask).
fn create_temp(path: &Path) -> io::Result<(PathBuf, File)> {
    let prefix = temp_prefix(path);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    for attempt in 0u32.. {
        let name = format!("{prefix}{}-{:x}", std::process::id(), nanos.wrapping_add(attempt as u128));
        let temp = path.with_file_name(name);
        match OpenOptions::new().write(true).create_new(true).open(&temp) {
            Ok(file) => return Ok((temp, file)),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists && attempt < 64 => continue,
            Err(err) => return Err(err),
        }
    }
    unreachable!("the loop returns within 64 attempts")
}

/// Whether process `pid` is running, when the system can say; `None` when it cannot.
fn process_alive(pid: u32) -> Option<bool> {
    let proc = Path::new("/proc");
    proc.join("self").exists().then(|| proc.join(pid.to_string()).exists())
}

/// Removes temporary files for `path` whose writing process no longer runs.
fn remove_stale_temps(path: &Path) {
    let prefix = temp_prefix(path);
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => dir,
        None => Path::new("."),
    };
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(&prefix).and_then(|rest| rest.split('-').next()) else { continue };
        if let Ok(pid) = pid.parse::<u32>()
            && pid != std::process::id()
            && process_alive(pid) == Some(false)
        {
            // Best effort: a temp another cleaner removed first is already gone.
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Creates `path`'s directory if needed.
fn create_parent(path: &Path) -> io::Result<()> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => fs::create_dir_all(dir),
        None => Ok(()),
    }
}

/// Fails unless a file can be created beside `path` (its directory is created if
/// needed) and `path` itself is not a directory, which no rename can replace: the
/// check to run before hours of work whose result goes to `path`.
pub fn ensure_writable(path: &Path) -> io::Result<()> {
    if path.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            "it is a directory; name a file (inside it, or elsewhere) instead",
        ));
    }
    create_parent(path)?;
    let (temp, file) = create_temp(path)?;
    drop(file);
    fs::remove_file(temp)
}

/// Has `write` fill a temporary file beside `path`, syncs it and renames it over
/// `path`. On any error the temporary file is removed and `path` is untouched; I/O
/// errors outside `write` become `E` through `on_io`.
pub fn write_atomically<E>(
    path: &Path,
    on_io: impl Fn(io::Error) -> E,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<(), E>,
) -> Result<(), E> {
    create_parent(path).map_err(&on_io)?;
    remove_stale_temps(path);
    let (temp, file) = create_temp(path).map_err(&on_io)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let written = write(&mut out).and_then(|()| {
        let finish = || -> io::Result<()> {
            let file = out.into_inner().map_err(|err| err.into_error())?;
            file.sync_all()?;
            fs::rename(&temp, path)
        };
        finish().map_err(&on_io)
    });
    if written.is_err() {
        // Best effort: the error being returned matters more than a stray temporary file,
        // which the next save removes anyway.
        let _ = fs::remove_file(&temp);
        return written;
    }
    sync_directory(path);
    Ok(())
}

/// Makes the rename durable (Unix); a failure here loses no data, so it is not an error.
fn sync_directory(path: &Path) {
    #[cfg(unix)]
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
    #[cfg(not(unix))]
    let _ = path;
}
