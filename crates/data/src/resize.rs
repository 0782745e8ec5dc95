//! Bilinear resizing with half-pixel centres and no antialiasing: what TensorFlow's
//! `tf.image.resize_with_pad` does for a square image into a square target (the
//! reference notebook's preprocessing), and PyTorch's `interpolate(mode="bilinear",
//! align_corners=False)`.

/// For each output coordinate along one axis: the two source indices and the weight
/// of the second.
#[derive(Clone, Debug, PartialEq)]
pub struct AxisWeights {
    lo: Vec<usize>,
    hi: Vec<usize>,
    frac: Vec<f32>,
}

impl AxisWeights {
    /// Weights mapping `input` samples onto `output` samples.
    pub fn new(input: usize, output: usize) -> Self {
        let scale = input as f64 / output as f64;
        let mut weights = AxisWeights { lo: vec![], hi: vec![], frac: vec![] };
        for o in 0..output {
            let source = ((o as f64 + 0.5) * scale - 0.5).max(0.0);
            let lo = (source.floor() as usize).min(input - 1);
            weights.lo.push(lo);
            weights.hi.push((lo + 1).min(input - 1));
            weights.frac.push((source - lo as f64) as f32);
        }
        weights
    }
}

/// Resizes one `in_h × in_w` byte image into `out` (`rows.len() × cols.len()` floats
/// in `[0, 1]`), with weights from [`AxisWeights`].
pub fn resize_into(image: &[u8], in_w: usize, rows: &AxisWeights, cols: &AxisWeights, out: &mut [f32]) {
    let out_w = cols.lo.len();
    let px = |y: usize, x: usize| image[y * in_w + x] as f32 / 255.0;
    for (oy, out_row) in out.chunks_mut(out_w).enumerate() {
        let (y0, y1, fy) = (rows.lo[oy], rows.hi[oy], rows.frac[oy]);
        for (ox, value) in out_row.iter_mut().enumerate() {
            let (x0, x1, fx) = (cols.lo[ox], cols.hi[ox], cols.frac[ox]);
            let top = px(y0, x0) + (px(y0, x1) - px(y0, x0)) * fx;
            let bottom = px(y1, x0) + (px(y1, x1) - px(y1, x0)) * fx;
            *value = top + (bottom - top) * fy;
        }
    }
}

/// Resizes one byte image to `out_h × out_w` floats in `[0, 1]`.
pub fn resize(image: &[u8], in_h: usize, in_w: usize, out_h: usize, out_w: usize) -> Vec<f32> {
    let mut out = vec![0.0; out_h * out_w];
    resize_into(image, in_w, &AxisWeights::new(in_h, out_h), &AxisWeights::new(in_w, out_w), &mut out);
    out
}
