//! Memory figures of this machine and process, from `/proc` (Linux); `None` elsewhere.

/// A `kB` field of a `/proc` status file, in bytes.
fn proc_field(file: &str, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(file).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Peak resident set size of this process in bytes, if the platform reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    proc_field("/proc/self/status", "VmHWM:")
}

/// Physical memory of this machine in bytes, if the platform reports it.
pub fn total_memory_bytes() -> Option<u64> {
    proc_field("/proc/meminfo", "MemTotal:")
}

/// Bytes as GiB or TiB for messages.
pub fn human_bytes(bytes: u64) -> String {
    let gib = bytes as f64 / (1u64 << 30) as f64;
    if gib >= 1024.0 { format!("{:.1} TiB", gib / 1024.0) } else { format!("{gib:.1} GiB") }
}
