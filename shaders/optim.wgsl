// Fused optimizer updates, one invocation per parameter element, in place.

// Mirrors `OptimParams` in crates/wgpu/src/params.rs, field for field.
struct Params {
    n: u32,
    use_velocity: u32,
    nesterov: u32,
    decoupled: u32,
    lr: f32,
    momentum: f32,
    weight_decay: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    bias1: f32,
    bias2: f32,
}


// SGD on one tensor (the rule is `sgd_element` in sgd_rule.wgsl).
@compute @workgroup_size(256)
fn sgd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
       @builtin(local_invocation_index) li: u32) {
    let i = flat_index(wg, groups, li);
    if (i >= params.n) {
        return;
    }
    let use_velocity = params.use_velocity != 0u;
    var v = 0.0;
    if (use_velocity) {
        v = state1[i];
    }
    let r = sgd_element(param[i], grad[i], v, params.lr, params.momentum, params.weight_decay, use_velocity,
                        params.nesterov != 0u);
    param[i] = r.x;
    if (use_velocity) {
        state1[i] = r.y;
    }
}

// Adam / AdamW with bias corrections bias1 = 1 − β₁ᵗ, bias2 = 1 − β₂ᵗ.
@compute @workgroup_size(256)
fn adam(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let i = flat_index(wg, groups, li);
    if (i >= params.n) {
        return;
    }
    var p = param[i];
    var g = grad[i];
    if (params.decoupled != 0u) {
        p *= 1.0 - params.lr * params.weight_decay;
    } else {
        g += params.weight_decay * p;
    }
    let m = params.beta1 * state1[i] + (1.0 - params.beta1) * g;
    let v = params.beta2 * state2[i] + (1.0 - params.beta2) * g * g;
    state1[i] = m;
    state2[i] = v;
    param[i] = p - params.lr * (m / params.bias1) / (sqrt(v / params.bias2) + params.eps);
}
