//! The safetensors writer: an 8-byte little-endian header length, a JSON header (the
//! metadata, then each tensor's dtype, shape and byte range) padded with spaces to a
//! multiple of 8, then the tensors' bytes. Tensors and metadata keys are written in
//! sorted order, so the same model and metadata always give the same bytes. Tensors are
//! read from their device one at a time while writing, and every value is checked:
//! a checkpoint never holds NaN or infinity.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use kiln_tensor::Tensor;

use crate::{NnError, Result};

/// JSON for a string, with the escapes the format needs.
fn json_string(text: &str) -> String {
    serde_json::to_string(text).expect("a string always serializes")
}

/// The JSON header for `tensors` (sorted by name) and `metadata`.
fn header(tensors: &[(String, Tensor)], metadata: &BTreeMap<String, String>) -> String {
    let mut entries = Vec::with_capacity(tensors.len() + 1);
    if !metadata.is_empty() {
        let pairs: Vec<String> =
            metadata.iter().map(|(k, v)| format!("{}:{}", json_string(k), json_string(v))).collect();
        entries.push(format!("\"__metadata__\":{{{}}}", pairs.join(",")));
    }
    let mut offset = 0usize;
    for (name, tensor) in tensors {
        let bytes = tensor.shape().numel() * 4;
        let dims: Vec<String> = tensor.dims().iter().map(usize::to_string).collect();
        entries.push(format!(
            "{}:{{\"dtype\":\"F32\",\"shape\":[{}],\"data_offsets\":[{offset},{}]}}",
            json_string(name),
            dims.join(","),
            offset + bytes
        ));
        offset += bytes;
    }
    let mut json = format!("{{{}}}", entries.join(","));
    while json.len() % 8 != 0 {
        json.push(' ');
    }
    json
}

/// Writes `tensors` and `metadata` as a safetensors file to `out` (`path` names the
/// file in errors). Fails with [`NnError::NonFinite`] on the first tensor holding NaN
/// or infinity.
pub fn write_safetensors(
    out: &mut impl Write,
    path: &Path,
    mut tensors: Vec<(String, Tensor)>,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let io = |source| NnError::Save { path: path.into(), source };
    let json = header(&tensors, metadata);
    out.write_all(&(json.len() as u64).to_le_bytes()).map_err(io)?;
    out.write_all(json.as_bytes()).map_err(io)?;
    for (name, tensor) in tensors {
        let values = tensor.to_vec()?;
        if values.iter().any(|v| !v.is_finite()) {
            return Err(NnError::NonFinite { path: path.into(), name });
        }
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        out.write_all(&bytes).map_err(io)?;
    }
    Ok(())
}
