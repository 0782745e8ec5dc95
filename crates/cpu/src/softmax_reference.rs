//! Softmax and its gradient by their definitions in f64, the reference the row kernels'
//! unit tests compare with.

/// Softmax (`log`: log-softmax) of `x`, the maximum subtracted first.
pub fn softmax_f64(x: &[f32], log: bool) -> Vec<f64> {
    let max = x.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
    let sum: f64 = x.iter().map(|&v| (v as f64 - max).exp()).sum();
    x.iter().map(|&v| if log { v as f64 - max - sum.ln() } else { (v as f64 - max).exp() / sum }).collect()
}

/// The softmax (log-softmax) gradient given the output `y` and the upstream gradient:
/// `y·(g − Σ g·y)`, or `g − e^y·Σ g`.
pub fn softmax_gradient_f64(y: &[f32], grad: &[f32], log: bool) -> Vec<f64> {
    let pairs = y.iter().zip(grad).map(|(&y, &g)| (y as f64, g as f64));
    if log {
        let total: f64 = grad.iter().map(|&g| g as f64).sum();
        pairs.map(|(y, g)| g - y.exp() * total).collect()
    } else {
        let total: f64 = pairs.clone().map(|(y, g)| y * g).sum();
        pairs.map(|(y, g)| y * (g - total)).collect()
    }
}
