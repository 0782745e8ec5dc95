//! Gradient clipping by global norm (PyTorch's `clip_grad_norm_`), on the gradients'
//! device: nothing is read back.

use kiln_tensor::{Gradients, Tensor, no_grad};

use crate::Module;

/// Scales every gradient of `model`'s parameters by `min(1, max_norm / (‖g‖ + 1e-6))`,
/// where `‖g‖` is the L2 norm of all of them together, and returns that norm (a
/// one-element tensor on the device; reading it is up to the caller), or `None` when
/// no parameter has a gradient.
///
/// ```
/// use kiln_cpu::CpuDevice;
/// use kiln_nn::{Dense, Initializer, Mode, Module, clip_grad_norm};
/// use kiln_tensor::{Device, Normal, Tensor};
///
/// let device = Device::cpu();
/// let model = Dense::new(&mut Initializer::new(&device, 0), 3, 2);
/// let x = Tensor::normal([4, 3], Normal { mean: 0.0, std: 10.0 }, 1, &device);
/// let mut grads = model.forward(&x, Mode::Eval).sum().backward();
/// let norm = clip_grad_norm(&model, &mut grads, 1.0).unwrap().item().unwrap();
/// let clipped = clip_grad_norm(&model, &mut grads, 1.0).unwrap().item().unwrap();
/// assert!(norm > 1.0 && (clipped - 1.0).abs() < 1e-4);
/// ```
pub fn clip_grad_norm(model: &dyn Module, grads: &mut Gradients, max_norm: f32) -> Option<Tensor> {
    assert!(max_norm > 0.0, "clip_grad_norm: max_norm must be positive, got {max_norm}");
    let params: Vec<Tensor> = model.named_parameters().into_iter().map(|(_, p)| p).collect();
    no_grad(|| {
        let squares: Vec<Tensor> =
            params.iter().filter_map(|p| grads.get(p)).map(|g| g.mul(g).sum()).collect();
        let first = squares.first()?;
        let total = squares[1..].iter().fold(first.clone(), |sum, s| sum.add(s)).sqrt();
        let scale = total.add_scalar(1e-6).powf(-1.0).mul_scalar(max_norm).clamp(0.0, 1.0);
        for param in &params {
            if let Some(grad) = grads.get(param) {
                let scaled = grad.mul(&scale);
                grads.insert(param, scaled);
            }
        }
        Some(total)
    })
}
