// SGD on two parameter tensors in one dispatch (the rule is `sgd_element` in sgd_rule.wgsl):
// invocations below n0 update tensor 0, the next n1 tensor 1. Halves the optimizer's
// dispatches per training step.

// Mirrors `SgdPairParams` in crates/wgpu/src/params.rs, field for field.
struct Params {
    n0: u32,
    n1: u32,
    use_velocity: u32,
    nesterov: u32,
    lr: f32,
    momentum: f32,
    weight_decay: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> grad0: array<f32>;
@group(0) @binding(2) var<storage, read_write> param0: array<f32>;
@group(0) @binding(3) var<storage, read_write> velocity0: array<f32>;
@group(0) @binding(4) var<storage, read> grad1: array<f32>;
@group(0) @binding(5) var<storage, read_write> param1: array<f32>;
@group(0) @binding(6) var<storage, read_write> velocity1: array<f32>;

fn step(p: f32, g: f32, v_old: f32) -> vec2<f32> {
    return sgd_element(p, g, v_old, params.lr, params.momentum, params.weight_decay, params.use_velocity != 0u,
                       params.nesterov != 0u);
}

@compute @workgroup_size(256)
fn sgd_pair(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
            @builtin(local_invocation_index) li: u32) {
    let i = flat_index(wg, groups, li);
    if (i < params.n0) {
        var v = 0.0;
        if (params.use_velocity != 0u) {
            v = velocity0[i];
        }
        let r = step(param0[i], grad0[i], v);
        param0[i] = r.x;
        if (params.use_velocity != 0u) {
            velocity0[i] = r.y;
        }
        return;
    }
    let j = i - params.n0;
    if (j >= params.n1) {
        return;
    }
    var v = 0.0;
    if (params.use_velocity != 0u) {
        v = velocity1[j];
    }
    let r = step(param1[j], grad1[j], v);
    param1[j] = r.x;
    if (params.use_velocity != 0u) {
        velocity1[j] = r.y;
    }
}
