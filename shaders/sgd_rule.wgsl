// PyTorch's SGD rule for one element, shared by the `sgd` and `sgd_group` kernels:
// d = g + wd·p; v = μ·v + d; p −= lr·(nesterov ? d + μ·v : v); without momentum
// p −= lr·d. Returns (new parameter, new velocity; the old one without momentum).
fn sgd_element(p: f32, g: f32, v_old: f32, lr: f32, momentum: f32, weight_decay: f32,
               use_velocity: bool, nesterov: bool) -> vec2<f32> {
    let d = g + weight_decay * p;
    if (!use_velocity) {
        return vec2<f32>(p - lr * d, v_old);
    }
    let v = momentum * v_old + d;
    return vec2<f32>(p - lr * select(v, d + momentum * v, nesterov), v);
}
