//! A gzip file that inflates far beyond what its IDX header declares must be stopped
//! as soon as it passes the declared size, not decompressed into memory first. Alone in
//! its test binary so that the process's peak memory measures this read only.

#![cfg(target_os = "linux")]

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use kiln_data::idx::read_images;

/// How much the bomb inflates to.
const INFLATED_BYTES: usize = 1 << 30;

/// Peak resident memory of this process in bytes (`VmHWM`).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

#[test]
fn a_gzip_bomb_is_stopped_at_the_size_its_header_declares() {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    let mut header = vec![0, 0, 0x08, 3];
    [10u32, 28, 28].iter().for_each(|d| header.extend(d.to_be_bytes()));
    encoder.write_all(&header).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..INFLATED_BYTES / zeros.len() {
        encoder.write_all(&zeros).unwrap();
    }
    let bomb = encoder.finish().unwrap();
    let dir = tempfile::Builder::new().prefix("kiln-data-bomb-").tempdir().unwrap();
    let path = dir.path().join("bomb-images-idx3-ubyte.gz");
    std::fs::write(&path, &bomb).unwrap();
    drop((bomb, zeros));

    let before = peak_rss();
    let err = read_images(&path, None).unwrap_err().to_string();
    let grew = peak_rss().saturating_sub(before);
    assert!(
        err.contains("bomb-images-idx3-ubyte.gz") && err.contains("longer than its header says"),
        "{err}"
    );
    assert!(grew < 64 << 20, "reading a 1 GiB bomb raised peak memory by {} MiB", grew >> 20);
}
