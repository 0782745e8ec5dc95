//! The IDX format Fashion-MNIST and MNIST ship in: a big-endian magic (two zero bytes,
//! the element type, the number of dimensions), the dimensions, then the data. Files
//! may be gzip-compressed; that is detected from the bytes, not the name. Every
//! inconsistency is an error naming the file.

use std::io::Read;
use std::path::Path;

use flate2::read::GzDecoder;

use crate::{DataError, Result};

/// Element type code of unsigned bytes, the only one these datasets use.
const UBYTE: u8 = 0x08;

/// A decoded IDX array of bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    /// Dimensions, outermost first (`[count, rows, cols]` for images).
    pub dims: Vec<usize>,
    /// Row-major data.
    pub data: Vec<u8>,
}

/// Reads `path` whole, decompressing it when it starts with the gzip magic.
pub fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|source| DataError::Io { path: path.into(), source })?;
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(raw);
    }
    let mut out = Vec::with_capacity(raw.len() * 2);
    GzDecoder::new(raw.as_slice())
        .read_to_end(&mut out)
        .map_err(|err| DataError::Gzip { path: path.into(), reason: err.to_string() })?;
    Ok(out)
}

/// Parses IDX bytes that must hold `expected_dims` dimensions of unsigned bytes.
pub fn parse_idx(bytes: &[u8], expected_dims: usize, path: &Path) -> Result<IdxArray> {
    let format = |reason: String| DataError::Format { path: path.into(), reason };
    let expected_magic = 0x0800 | expected_dims as u32;
    if bytes.len() < 4 {
        return Err(format(format!("{} bytes is too short for a header", bytes.len())));
    }
    let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if bytes[0] != 0 || bytes[1] != 0 || bytes[2] != UBYTE {
        return Err(format(format!("magic number 0x{magic:08x}, expected 0x{expected_magic:08x}")));
    }
    if bytes[3] as usize != expected_dims {
        return Err(format(format!(
            "magic number 0x{magic:08x} declares {} dimensions, expected {expected_dims} (0x{expected_magic:08x})",
            bytes[3]
        )));
    }
    let header = 4 + 4 * expected_dims;
    if bytes.len() < header {
        return Err(format(format!(
            "{} bytes is too short for a {expected_dims}-dimension header",
            bytes.len()
        )));
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let expected = dims.iter().product::<usize>();
    let found = bytes.len() - header;
    if found != expected {
        let which = if found < expected { "shorter" } else { "longer" };
        return Err(format(format!(
            "the file is {which} than its header says: dimensions {dims:?} need {expected} data bytes, found {found}"
        )));
    }
    Ok(IdxArray { dims, data: bytes[header..].to_vec() })
}

/// Reads an IDX image file (`0x00000803`): returns `(count, rows, cols, pixels)`.
pub fn read_images(path: &Path) -> Result<(usize, usize, usize, Vec<u8>)> {
    let array = parse_idx(&read_maybe_gzip(path)?, 3, path)?;
    Ok((array.dims[0], array.dims[1], array.dims[2], array.data))
}

/// Reads an IDX label file (`0x00000801`) whose labels must lie in `0..classes`.
pub fn read_labels(path: &Path, classes: usize) -> Result<Vec<u8>> {
    let array = parse_idx(&read_maybe_gzip(path)?, 1, path)?;
    if let Some((index, &label)) = array.data.iter().enumerate().find(|(_, l)| **l as usize >= classes) {
        return Err(DataError::LabelOutOfRange { path: path.into(), index, label, classes });
    }
    Ok(array.data)
}
