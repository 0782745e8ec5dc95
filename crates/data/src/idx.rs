//! The IDX format Fashion-MNIST and MNIST ship in: a big-endian magic (two zero bytes,
//! the element type, the number of dimensions), the dimensions, then the data. Files
//! may be gzip-compressed; that is detected from the bytes, not the name. Every
//! inconsistency is an error naming the file.
//!
//! Files are read as a stream: the header is decoded first, the data size it implies is
//! computed with checked arithmetic, and no more than that (plus one byte, to notice a
//! longer file) is ever decompressed, so a crafted header or a gzip bomb costs at most
//! what the header honestly declares and is caught as soon as it lies.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use flate2::read::GzDecoder;

use crate::{DataError, Result};

/// Element type code of unsigned bytes, the only one these datasets use.
const UBYTE: u8 = 0x08;

/// The first two bytes of every gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Most bytes reserved up front for an array: larger ones grow as data really arrives,
/// so a header that promises terabytes cannot make the reader allocate them.
const MAX_PREALLOCATION: usize = 64 << 20;

/// A decoded IDX array of bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    /// Dimensions, outermost first (`[count, rows, cols]` for images).
    pub dims: Vec<usize>,
    /// Row-major data.
    pub data: Vec<u8>,
}

/// The size every image of a file must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageSize {
    /// Height in pixels.
    pub rows: usize,
    /// Width in pixels.
    pub cols: usize,
}

/// Images decoded from an IDX image file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxImages {
    /// How many images the file holds.
    pub count: usize,
    /// The size of each image.
    pub size: ImageSize,
    /// `count × rows × cols` pixels, row-major, image after image.
    pub pixels: Vec<u8>,
}

/// A file's bytes, decompressed on the fly when they start with the gzip magic.
struct Stream {
    reader: Box<dyn Read>,
    gzip: bool,
}

impl Stream {
    fn open(path: &Path) -> Result<Stream> {
        let file = File::open(path).map_err(|source| DataError::Io { path: path.into(), source })?;
        let mut buffered = BufReader::new(file);
        let head = buffered.fill_buf().map_err(|source| DataError::Io { path: path.into(), source })?;
        let gzip = head.starts_with(&GZIP_MAGIC);
        let reader: Box<dyn Read> =
            if gzip { Box::new(GzDecoder::new(buffered)) } else { Box::new(buffered) };
        Ok(Stream { reader, gzip })
    }

    /// Reads up to `limit` bytes (fewer only at the end of the data).
    fn read_up_to(&mut self, limit: u64, capacity: usize, path: &Path) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(capacity.min(MAX_PREALLOCATION));
        match (&mut self.reader).take(limit).read_to_end(&mut out) {
            Ok(_) => Ok(out),
            Err(err) if self.gzip => Err(DataError::Gzip { path: path.into(), reason: err.to_string() }),
            Err(source) => Err(DataError::Io { path: path.into(), source }),
        }
    }
}

/// Reads `path` whole, decompressing it when it starts with the gzip magic; a file
/// that holds (or inflates to) more than `limit` bytes is an error, found as soon as
/// the limit is passed.
pub fn read_maybe_gzip(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let data = Stream::open(path)?.read_up_to(limit.saturating_add(1), 0, path)?;
    if data.len() as u64 > limit {
        return Err(DataError::Format {
            path: path.into(),
            reason: format!("it holds more than the {limit} bytes expected"),
        });
    }
    Ok(data)
}

/// Reads an IDX file that must hold `expected_dims` dimensions of unsigned bytes.
/// `check_dims` sees the header's dimensions before any data is read and may reject
/// them with a reason.
pub fn read_idx(
    path: &Path,
    expected_dims: usize,
    check_dims: impl FnOnce(&[usize]) -> std::result::Result<(), String>,
) -> Result<IdxArray> {
    let format = |reason: String| DataError::Format { path: path.into(), reason };
    let mut stream = Stream::open(path)?;
    let expected_magic = 0x0800 | expected_dims as u32;
    let magic = stream.read_up_to(4, 4, path)?;
    if magic.len() < 4 {
        return Err(format(format!("{} bytes is too short for a header", magic.len())));
    }
    let magic_value = u32::from_be_bytes([magic[0], magic[1], magic[2], magic[3]]);
    if magic[0] != 0 || magic[1] != 0 || magic[2] != UBYTE {
        return Err(format(format!("magic number 0x{magic_value:08x}, expected 0x{expected_magic:08x}")));
    }
    if magic[3] as usize != expected_dims {
        return Err(format(format!(
            "magic number 0x{magic_value:08x} declares {} dimensions, expected {expected_dims} (0x{expected_magic:08x})",
            magic[3]
        )));
    }
    let header = stream.read_up_to(4 * expected_dims as u64, 4 * expected_dims, path)?;
    if header.len() < 4 * expected_dims {
        return Err(format(format!(
            "{} bytes is too short for a {expected_dims}-dimension header",
            4 + header.len()
        )));
    }
    let dims: Vec<usize> =
        header.chunks_exact(4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize).collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |total, &d| total.checked_mul(d))
        .ok_or_else(|| format(format!("dimensions {dims:?} describe more data than memory can address")))?;
    check_dims(&dims).map_err(format)?;
    let data = stream.read_up_to(expected as u64 + 1, expected, path)?;
    if data.len() < expected {
        return Err(format(format!(
            "the file is shorter than its header says: dimensions {dims:?} need {expected} data bytes, found {}",
            data.len()
        )));
    }
    if data.len() > expected {
        return Err(format(format!(
            "the file is longer than its header says: dimensions {dims:?} need {expected} data bytes, found more"
        )));
    }
    Ok(IdxArray { dims, data })
}

/// Reads an IDX image file (`0x00000803`). Its images must not be empty and, when
/// `size` is given, must have that size.
pub fn read_images(path: &Path, size: Option<ImageSize>) -> Result<IdxImages> {
    let array = read_idx(path, 3, |dims| {
        let found = ImageSize { rows: dims[1], cols: dims[2] };
        match size {
            Some(wanted) if wanted != found => Err(format!(
                "images are {}×{}, expected {}×{}",
                found.rows, found.cols, wanted.rows, wanted.cols
            )),
            _ if found.rows == 0 || found.cols == 0 => {
                Err(format!("images are {}×{}: an image needs at least one pixel", found.rows, found.cols))
            }
            _ => Ok(()),
        }
    })?;
    let size = ImageSize { rows: array.dims[1], cols: array.dims[2] };
    Ok(IdxImages { count: array.dims[0], size, pixels: array.data })
}

/// Reads an IDX label file (`0x00000801`) whose labels must lie in `0..classes`.
pub fn read_labels(path: &Path, classes: usize) -> Result<Vec<u8>> {
    let array = read_idx(path, 1, |_| Ok(()))?;
    if let Some((index, &label)) = array.data.iter().enumerate().find(|(_, l)| **l as usize >= classes) {
        return Err(DataError::LabelOutOfRange { path: path.into(), index, label, classes });
    }
    Ok(array.data)
}
