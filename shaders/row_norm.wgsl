// Layer normalization of [rows, features]: one invocation per row normalizes, scales
// and shifts it (forward) or writes its input gradient (backward); one workgroup per
// feature sums the weight and bias gradients over the rows. `stats` holds each row's
// mean, then each row's 1/√(var + eps) ([2, rows]); `param_grads` Σ g·x̂, then Σ g.

// Mirrors `RowNormParams` in crates/wgpu/src/params.rs, field for field.
struct Params {
    rows: u32,
    features: u32,
    // 1 where `weight` (resp. `bias`) is bound.
    has_weight: u32,
    has_bias: u32,
    eps: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

fn scale_of(i: u32) -> f32 {
    if (params.has_weight == 1u) {
        return weight[i];
    }
    return 1.0;
}

@compute @workgroup_size(256)
fn row_norm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
            @builtin(local_invocation_index) li: u32) {
    let row = flat_index(wg, groups, li);
    if (row >= params.rows) {
        return;
    }
    let base = row * params.features;
    let n = f32(params.features);
    var sum = 0.0;
    for (var i = 0u; i < params.features; i++) {
        sum += x[base + i];
    }
    let mean = sum / n;
    var squares = 0.0;
    for (var i = 0u; i < params.features; i++) {
        let d = x[base + i] - mean;
        squares += d * d;
    }
    let rstd = 1.0 / sqrt(squares / n + params.eps);
    stats[row] = mean;
    stats[params.rows + row] = rstd;
    for (var i = 0u; i < params.features; i++) {
        var y = (x[base + i] - mean) * rstd * scale_of(i);
        if (params.has_bias == 1u) {
            y += bias[i];
        }
        out[base + i] = y;
    }
}

// The input gradient: rstd·(s − mean(s) − x̂·mean(s·x̂)) with s = g·weight.
@compute @workgroup_size(256)
fn row_norm_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                     @builtin(local_invocation_index) li: u32) {
    let row = flat_index(wg, groups, li);
    if (row >= params.rows) {
        return;
    }
    let base = row * params.features;
    let n = f32(params.features);
    let mean = stats[row];
    let rstd = stats[params.rows + row];
    var sum_s = 0.0;
    var sum_sx = 0.0;
    for (var i = 0u; i < params.features; i++) {
        let s = grad[base + i] * scale_of(i);
        sum_s += s;
        sum_sx += s * (x[base + i] - mean) * rstd;
    }
    for (var i = 0u; i < params.features; i++) {
        let s = grad[base + i] * scale_of(i);
        let normalized = (x[base + i] - mean) * rstd;
        out[base + i] = rstd * (s - sum_s / n - normalized * (sum_sx / n));
    }
}

// One workgroup per feature: Σ over rows of g·x̂ and of g.
@compute @workgroup_size(256)
fn row_norm_param_grads(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                        @builtin(local_invocation_index) li: u32) {
    let feature = wg.y * groups.x + wg.x;
    if (feature >= params.features) {
        return;
    }
    var sum_gx = 0.0;
    var sum_g = 0.0;
    for (var row = li; row < params.rows; row += 256u) {
        let at = row * params.features + feature;
        sum_gx += grad[at] * (x[at] - stats[row]) * stats[params.rows + row];
        sum_g += grad[at];
    }
    let sums = workgroup_sums(li, sum_gx, sum_g);
    if (li == 0u) {
        param_grads[feature] = sums.x;
        param_grads[params.features + feature] = sums.y;
    }
}
