//! The IDX reader on small files the tests write: valid raw and gzip files, and every
//! corrupt variant, each producing its specific error.

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use kiln_data::idx::{IdxImages, ImageSize, read_images, read_labels};
use kiln_data::{DataError, FashionMnist};

/// A scratch directory for `test`, removed when dropped.
fn temp_dir(test: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(&format!("kiln-data-idx-{test}-")).tempdir().unwrap()
}

/// An IDX file: magic `0x0000_08_{ndims}`, the dimensions, then `data`.
fn idx(ndims: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0, 0, 0x08, ndims];
    dims.iter().for_each(|d| bytes.extend(d.to_be_bytes()));
    bytes.extend_from_slice(data);
    bytes
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn write(dir: impl AsRef<Path>, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.as_ref().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn images(count: usize, rows: usize, cols: usize, pixels: &[u8]) -> IdxImages {
    IdxImages { count, size: ImageSize { rows, cols }, pixels: pixels.to_vec() }
}

/// A Fashion-MNIST directory whose four files hold these images and labels.
fn dataset(test: &str, images: &[u8], labels: &[u8]) -> tempfile::TempDir {
    let set = temp_dir(test);
    for (name, bytes) in [
        ("train-images-idx3-ubyte.gz", images),
        ("train-labels-idx1-ubyte.gz", labels),
        ("t10k-images-idx3-ubyte.gz", images),
        ("t10k-labels-idx1-ubyte.gz", labels),
    ] {
        write(&set, name, &gzip(bytes));
    }
    set
}

fn message(err: DataError) -> String {
    err.to_string()
}

#[test]
fn raw_and_gzip_files_read_alike() {
    let dir = temp_dir("valid");
    let pixels: Vec<u8> = (0..2 * 3 * 4).map(|v| v as u8).collect();
    let raw = write(&dir, "images.idx", &idx(3, &[2, 3, 4], &pixels));
    let packed = write(&dir, "images.bin", &gzip(&idx(3, &[2, 3, 4], &pixels)));
    assert_eq!(read_images(&raw, None).unwrap(), images(2, 3, 4, &pixels));
    assert_eq!(read_images(&packed, Some(ImageSize { rows: 3, cols: 4 })).unwrap(), images(2, 3, 4, &pixels));
    let labels = write(&dir, "labels.gz", &gzip(&idx(1, &[3], &[0, 9, 4])));
    assert_eq!(read_labels(&labels, 10).unwrap(), vec![0, 9, 4]);
}

#[test]
fn wrong_magic_and_wrong_dimension_count() {
    let dir = temp_dir("magic");
    let mut bad = idx(3, &[1, 1, 1], &[0]);
    bad[2] = 0x0D;
    let path = write(&dir, "float.idx", &bad);
    let err = message(read_images(&path, None).unwrap_err());
    assert!(err.contains("magic number 0x00000d03, expected 0x00000803"), "{err}");
    assert!(err.contains("float.idx"), "{err}");

    let labels_as_images = write(&dir, "labels.idx", &idx(1, &[3], &[1, 2, 3]));
    let err = message(read_images(&labels_as_images, None).unwrap_err());
    assert!(err.contains("declares 1 dimensions, expected 3"), "{err}");
}

#[test]
fn files_shorter_or_longer_than_their_header() {
    let dir = temp_dir("size");
    let short = write(&dir, "short.idx", &idx(3, &[2, 3, 4], &[0; 23]));
    let err = message(read_images(&short, None).unwrap_err());
    assert!(
        err.contains("shorter than its header says: dimensions [2, 3, 4] need 24 data bytes, found 23"),
        "{err}"
    );
    let long = write(&dir, "long.idx", &idx(1, &[3], &[0; 4]));
    let err = message(read_labels(&long, 10).unwrap_err());
    assert!(err.contains("longer than its header says"), "{err}");
    let stub = write(&dir, "stub.idx", &[0, 0]);
    assert!(message(read_labels(&stub, 10).unwrap_err()).contains("too short for a header"));
}

#[test]
fn corrupt_and_truncated_gzip() {
    let dir = temp_dir("gzip");
    let good = gzip(&idx(3, &[10, 28, 28], &[7; 7840]));
    let truncated = write(&dir, "cut.gz", &good[..good.len() / 2]);
    let err = message(read_images(&truncated, None).unwrap_err());
    assert!(err.contains("corrupt or truncated gzip data"), "{err}");
    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0xFF;
    flipped[middle + 1] ^= 0xFF;
    let corrupt = write(&dir, "corrupt.gz", &flipped);
    let err = message(read_images(&corrupt, None).unwrap_err());
    assert!(err.contains("corrupt or truncated gzip data") || err.contains("not a valid IDX"), "{err}");
}

#[test]
fn labels_out_of_range_and_count_mismatch() {
    let dir = temp_dir("labels");
    let path = write(&dir, "labels.idx", &idx(1, &[4], &[0, 3, 10, 2]));
    let err = message(read_labels(&path, 10).unwrap_err());
    assert!(err.contains("label 10 of example 2 is outside 0..10"), "{err}");

    let set = dataset("mismatch", &idx(3, &[3, 28, 28], &[0; 3 * 784]), &idx(1, &[2], &[1, 2]));
    let err = message(FashionMnist::load_dir(set.path()).unwrap_err());
    assert!(err.contains("holds 3 images but") && err.contains("holds 2 labels"), "{err}");
}

#[test]
fn dimensions_whose_product_overflows_are_an_error_not_a_panic() {
    let dir = temp_dir("overflow");
    let path = write(&dir, "huge.idx", &idx(3, &[4, 1 << 31, 1 << 31], &[0; 16]));
    let err = message(read_images(&path, None).unwrap_err());
    assert!(err.contains("huge.idx") && err.contains("more data than memory can address"), "{err}");

    let set =
        dataset("overflow-set", &idx(3, &[4, 1 << 31, 1 << 31], &[0; 16]), &idx(1, &[4], &[1, 2, 3, 4]));
    let err = message(FashionMnist::load_dir(set.path()).unwrap_err());
    assert!(err.contains("train-images-idx3-ubyte.gz: not a valid IDX file"), "{err}");
}

#[test]
fn empty_or_wrongly_sized_images_are_rejected() {
    let set = dataset("empty-images", &idx(3, &[3, 0, 0], &[]), &idx(1, &[3], &[1, 2, 3]));
    let err = message(FashionMnist::load_dir(set.path()).unwrap_err());
    assert!(
        err.contains("train-images-idx3-ubyte.gz") && err.contains("images are 0×0, expected 28×28"),
        "{err}"
    );

    let dir = temp_dir("zero-pixels");
    let path = write(&dir, "flat.idx", &idx(3, &[5, 0, 7], &[]));
    let err = message(read_images(&path, None).unwrap_err());
    assert!(err.contains("images are 0×7: an image needs at least one pixel"), "{err}");

    let set = dataset("small-images", &idx(3, &[2, 27, 28], &[0; 2 * 27 * 28]), &idx(1, &[2], &[1, 2]));
    let err = message(FashionMnist::load_dir(set.path()).unwrap_err());
    assert!(err.contains("images are 27×28, expected 28×28"), "{err}");
}

#[test]
fn a_split_without_examples_is_rejected() {
    let set = dataset("no-examples", &idx(3, &[0, 28, 28], &[]), &idx(1, &[0], &[]));
    let err = message(FashionMnist::load_dir(set.path()).unwrap_err());
    assert!(err.contains("train-images-idx3-ubyte.gz") && err.contains("holds no images"), "{err}");
}
