//! The differentiable ops, one family a file, each with its forward and its backward
//! rule side by side. Shape mistakes panic with a message naming the op and the shapes.

mod attention;
mod avg_pool;
mod batch_norm;
mod binary;
mod conv;
mod conv_variants;
mod dropout;
mod indexing;
mod layer_norm;
mod linear;
mod loss;
mod loss_variants;
mod matmul;
mod normalize;
mod operators;
mod pool;
mod reduce;
mod reduce_axes;
mod regression_loss;
mod reshape;
mod softmax;
mod unary;
mod views;

pub use batch_norm::{BatchNormOutput, BatchStatistics};
pub use conv::Size2d;
pub use conv_variants::ConvOptions;
pub use reduce_axes::Variance;

use crate::{Activation, DType, Tensor, UnaryOp};

/// Panics unless `t` holds f32 values.
fn expect_f32(op: &str, t: &Tensor) {
    assert_eq!(t.dtype(), DType::F32, "{op}: expected an f32 tensor, got {:?}", t);
}

/// Panics unless `a` and `b` live on the same device.
fn expect_same_device(op: &str, a: &Tensor, b: &Tensor) {
    assert!(
        a.device() == b.device(),
        "{op}: tensors on different devices ({} and {}); move one with to_device()",
        a.device().name(),
        b.device().name()
    );
}

/// The gradient of a fused op's pre-activation from the gradient of its output `grad`:
/// unchanged for [`Activation::Identity`]; for ReLU, passed where the saved `output` is
/// positive (which is where its input was) and zero elsewhere.
fn through_activation(activation: Activation, output: &Tensor, grad: Tensor) -> Tensor {
    match activation {
        Activation::Identity => grad,
        Activation::Relu => grad.unary_gradient(UnaryOp::Relu, output, output),
    }
}

/// Panics unless `t` has exactly `rank` dimensions.
fn expect_rank(op: &str, what: &str, t: &Tensor, rank: usize) {
    assert_eq!(t.shape().rank(), rank, "{op}: {what} must have {rank} dimensions, got shape {}", t.shape());
}
