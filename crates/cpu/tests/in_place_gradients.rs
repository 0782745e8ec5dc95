//! A unary op's gradient is written into the incoming gradient's buffer only when the
//! backend holds the only reference to it; a shared gradient is left as it was.

use std::sync::Arc;

use kiln_cpu::CpuBackend;
use kiln_tensor::{Backend, UnaryOp};

#[test]
fn an_unshared_gradient_is_reused_and_a_shared_one_is_not() {
    let backend = CpuBackend::with_threads(2).unwrap();
    let x = backend.upload_f32(vec![-1.0, 2.0, 0.0, 3.0]);
    let values = |s: &kiln_tensor::StorageRef| backend.to_vec_f32(s).unwrap();

    let grad = backend.upload_f32(vec![10.0, 20.0, 30.0, 40.0]);
    let buffer = Arc::as_ptr(&grad);
    let dx = backend.unary_backward_owned(UnaryOp::Relu, &x, &x, grad);
    assert!(std::ptr::eq(Arc::as_ptr(&dx), buffer), "the only reference: written in place");
    assert_eq!(values(&dx), vec![0.0, 20.0, 0.0, 40.0]);

    let grad = backend.upload_f32(vec![10.0, 20.0, 30.0, 40.0]);
    let held = grad.clone();
    let dx = backend.unary_backward_owned(UnaryOp::MulScalar { factor: 2.0 }, &x, &x, grad);
    assert!(!Arc::ptr_eq(&dx, &held), "a shared gradient gets a new buffer");
    assert_eq!(values(&dx), vec![20.0, 40.0, 60.0, 80.0]);
    assert_eq!(values(&held), vec![10.0, 20.0, 30.0, 40.0], "and stays as it was");
}
