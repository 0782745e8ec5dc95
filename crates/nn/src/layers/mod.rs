//! The layers: convolution, dense, max- and average pooling, normalization, dropout,
//! flatten, activations, and the `Sequential` container.

mod activation;
mod attention;
mod avg_pool;
mod conv;
mod dense;
mod dropout;
mod embedding;
mod flatten;
mod fusion;
mod norm;
mod pool;
mod pool_window;
mod sequential;

pub use activation::*;
pub use attention::{AttentionMasks, MultiheadAttention};
pub use avg_pool::{AdaptiveAvgPool2d, AvgPool2d};
pub use conv::Conv2d;
pub use dense::Dense;
pub use dropout::Dropout;
pub use embedding::Embedding;
pub use flatten::Flatten;
pub(crate) use fusion::{ThenRelu, conv_batch_norm};
pub use norm::{BatchNorm, BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm};
pub use pool::MaxPool2d;
pub use sequential::Sequential;

use kiln_tensor::{Shape, Tensor};

use crate::summary::format_dims;
use crate::{NnError, Result};

/// Checks that `input` is a per-example image shape `[C, H, W]`.
fn expect_image(layer: &str, input: &Shape) -> Result<(usize, usize, usize)> {
    match input.dims() {
        &[c, h, w] => Ok((c, h, w)),
        _ => Err(NnError::Shape(format!("{layer}: expects images [C, H, W], got {input}"))),
    }
}

/// Output length of a sliding window: `(len + 2·pad − window) / stride + 1`, or an
/// error naming the layer when the window does not fit.
fn window_output(
    layer: &str,
    input: &Shape,
    len: usize,
    window: usize,
    stride: usize,
    pad: usize,
) -> Result<usize> {
    if len + 2 * pad < window {
        return Err(NnError::Shape(format!(
            "{layer}: input {} is smaller than its {window}×{window} window; use a larger input size",
            format_dims(input)
        )));
    }
    Ok((len + 2 * pad - window) / stride + 1)
}

/// Visits a layer's `weight` and optional `bias` under `prefix`.
fn visit_weight_and_bias(
    prefix: &str,
    weight: &Tensor,
    bias: Option<&Tensor>,
    f: &mut dyn FnMut(&str, &Tensor),
) {
    f(&format!("{prefix}weight"), weight);
    if let Some(bias) = bias {
        f(&format!("{prefix}bias"), bias);
    }
}

/// Visits a layer's `weight` and optional `bias` under `prefix`, mutably.
fn visit_weight_and_bias_mut(
    prefix: &str,
    weight: &mut Tensor,
    bias: Option<&mut Tensor>,
    f: &mut dyn FnMut(&str, &mut Tensor),
) {
    f(&format!("{prefix}weight"), weight);
    if let Some(bias) = bias {
        f(&format!("{prefix}bias"), bias);
    }
}
