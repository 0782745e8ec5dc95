//! The square window every pooling layer slides: its size, stride and padding, its
//! checks, its summary label and the output shape it gives.

use kiln_tensor::Shape;

use super::{expect_image, window_output};
use crate::Result;

/// `kernel × kernel` windows every `stride` pixels with `padding` around each plane.
#[derive(Clone, Copy, Debug)]
pub struct PoolWindow {
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

impl PoolWindow {
    /// A window without padding; `layer` names the pooling layer in panics.
    pub fn new(layer: &str, kernel: usize, stride: usize) -> Self {
        assert!(kernel > 0 && stride > 0, "{layer}: kernel and stride must be positive");
        PoolWindow { kernel, stride, padding: 0 }
    }

    /// The same window with `padding` (at most half the kernel).
    pub fn with_padding(self, layer: &str, padding: usize) -> Self {
        assert!(2 * padding <= self.kernel, "{layer}: padding must be at most half the kernel");
        PoolWindow { padding, ..self }
    }

    /// The summary label, e.g. `max-pool 3/2 pad 1`.
    pub fn label(&self, kind: &str) -> String {
        let pad = if self.padding > 0 { format!(" pad {}", self.padding) } else { String::new() };
        format!("{kind} {}/{}{pad}", self.kernel, self.stride)
    }

    /// The pooled shape of one example `[C, H, W]`; `label` names the layer in errors.
    pub fn output_shape(&self, label: &str, input: &Shape) -> Result<Shape> {
        let (c, h, w) = expect_image(label, input)?;
        let oh = window_output(label, input, h, self.kernel, self.stride, self.padding)?;
        let ow = window_output(label, input, w, self.kernel, self.stride, self.padding)?;
        Ok(Shape::from([c, oh, ow]))
    }
}
