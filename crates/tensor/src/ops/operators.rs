//! `+ - * /` and unary `-` on `Tensor` and `&Tensor`, with tensors and with `f32` scalars.

use std::ops::{Add, Div, Mul, Neg, Sub};

use crate::Tensor;

macro_rules! tensor_operator {
    ($trait:ident, $method:ident, $tensor_fn:ident, $op:tt, $scalar:expr) => {
        impl $trait<&Tensor> for &Tensor {
            type Output = Tensor;
            fn $method(self, rhs: &Tensor) -> Tensor {
                self.$tensor_fn(rhs)
            }
        }

        impl $trait<&Tensor> for Tensor {
            type Output = Tensor;
            fn $method(self, rhs: &Tensor) -> Tensor {
                (&self).$tensor_fn(rhs)
            }
        }

        impl $trait<f32> for &Tensor {
            type Output = Tensor;
            fn $method(self, rhs: f32) -> Tensor {
                let scalar: fn(&Tensor, f32) -> Tensor = $scalar;
                scalar(self, rhs)
            }
        }

        impl $trait<f32> for Tensor {
            type Output = Tensor;
            fn $method(self, rhs: f32) -> Tensor {
                &self $op rhs
            }
        }
    };
}

tensor_operator!(Add, add, add, +, |t, s| t.add_scalar(s));
tensor_operator!(Sub, sub, sub, -, |t, s| t.add_scalar(-s));
tensor_operator!(Mul, mul, mul, *, |t, s| t.mul_scalar(s));
tensor_operator!(Div, div, div, /, |t, s| t.mul_scalar(1.0 / s));

impl Neg for &Tensor {
    type Output = Tensor;
    fn neg(self) -> Tensor {
        Tensor::neg(self)
    }
}
