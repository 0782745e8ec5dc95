// Axis-wise kernels on the [outer, len, inner] view of a tensor: sum (a workgroup per
// lane), per-channel sums for bias gradients, max with argmax and its gradient,
// softmax/log-softmax and their gradients, and the fused softmax cross-entropy.

// Mirrors `ReduceParams` in crates/wgpu/src/params.rs, field for field.
struct Params {
    outer: u32,
    len: u32,
    inner: u32,
    log: u32,
    n: u32,
    classes: u32,
    eps: f32,
    _pad: u32,
}


var<workgroup> partial: array<f32, 256>;

// Tree sum of `partial` within the workgroup; the total ends in partial[0].
fn reduce_partial(li: u32) {
    workgroupBarrier();
    for (var width = 128u; width > 0u; width >>= 1u) {
        if (li < width) {
            partial[li] += partial[li + width];
        }
        workgroupBarrier();
    }
}

fn lane_of(wg: vec3<u32>, groups: vec3<u32>) -> u32 {
    return wg.y * groups.x + wg.x;
}

// One workgroup per (outer, inner) lane: Σ over len.
@compute @workgroup_size(256)
fn sum_axis(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
            @builtin(local_invocation_index) li: u32) {
    let lane = lane_of(wg, groups);
    let lanes = params.outer * params.inner;
    let o = lane / max(params.inner, 1u);
    let i = lane % max(params.inner, 1u);
    var s = 0.0;
    if (lane < lanes) {
        for (var l = li; l < params.len; l += 256u) {
            s += in0[(o * params.len + l) * params.inner + i];
        }
    }
    partial[li] = s;
    reduce_partial(li);
    if (li == 0u && lane < lanes) {
        out[lane] = partial[0];
    }
}

// Bias gradient: for channel `lane` of [outer = batch, len = channels, inner = plane],
// Σ over batch and plane.
@compute @workgroup_size(256)
fn channel_sum(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
               @builtin(local_invocation_index) li: u32) {
    let c = lane_of(wg, groups);
    var s = 0.0;
    if (c < params.len) {
        let count = params.outer * params.inner;
        for (var j = li; j < count; j += 256u) {
            let b = j / params.inner;
            let p = j % params.inner;
            s += in0[(b * params.len + c) * params.inner + p];
        }
    }
    partial[li] = s;
    reduce_partial(li);
    if (li == 0u && c < params.len) {
        out[c] = partial[0];
    }
}

// One invocation per lane: the maximum over len and its first position.
@compute @workgroup_size(256)
fn max_axis(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
            @builtin(local_invocation_index) li: u32) {
    let lane = flat_index(wg, groups, li);
    if (lane >= params.outer * params.inner) {
        return;
    }
    let o = lane / params.inner;
    let i = lane % params.inner;
    var best = in0[o * params.len * params.inner + i];
    var at = 0u;
    for (var l = 1u; l < params.len; l++) {
        let v = in0[(o * params.len + l) * params.inner + i];
        if (v > best) {
            best = v;
            at = l;
        }
    }
    out[lane] = best;
    out_ints[lane] = i32(at);
}

// One invocation per input element: the lane's gradient where it was the maximum.
@compute @workgroup_size(256)
fn max_axis_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                     @builtin(local_invocation_index) li: u32) {
    let idx = flat_index(wg, groups, li);
    if (idx >= params.outer * params.len * params.inner) {
        return;
    }
    let i = idx % params.inner;
    let l = (idx / params.inner) % params.len;
    let o = idx / (params.inner * params.len);
    let lane = o * params.inner + i;
    out[idx] = select(0.0, in0[lane], u32(ints[lane]) == l);
}

// One invocation per lane: softmax or log-softmax over len, maximum subtracted first.
@compute @workgroup_size(256)
fn softmax(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
           @builtin(local_invocation_index) li: u32) {
    let lane = flat_index(wg, groups, li);
    if (lane >= params.outer * params.inner) {
        return;
    }
    let base = (lane / params.inner) * params.len * params.inner + lane % params.inner;
    var m = in0[base];
    for (var l = 1u; l < params.len; l++) {
        m = max(m, in0[base + l * params.inner]);
    }
    var s = 0.0;
    for (var l = 0u; l < params.len; l++) {
        s += exp(in0[base + l * params.inner] - m);
    }
    let log_s = log(s);
    for (var l = 0u; l < params.len; l++) {
        let shifted = in0[base + l * params.inner] - m;
        out[base + l * params.inner] = select(exp(shifted) / s, shifted - log_s, params.log != 0u);
    }
}

// in0 = y (the forward output), in1 = upstream gradient.
@compute @workgroup_size(256)
fn softmax_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                    @builtin(local_invocation_index) li: u32) {
    let lane = flat_index(wg, groups, li);
    if (lane >= params.outer * params.inner) {
        return;
    }
    let base = (lane / params.inner) * params.len * params.inner + lane % params.inner;
    var total = 0.0;
    for (var l = 0u; l < params.len; l++) {
        let at = base + l * params.inner;
        total += select(in1[at] * in0[at], in1[at], params.log != 0u);
    }
    for (var l = 0u; l < params.len; l++) {
        let at = base + l * params.inner;
        if (params.log != 0u) {
            out[at] = in1[at] - exp(in0[at]) * total;
        } else {
            out[at] = in0[at] * (in1[at] - total);
        }
    }
}

// One invocation per row of logits [n, classes]: probabilities into out, the row's
// loss into out2 (NaN for a label outside 0..classes, so a bad label cannot pass
// unnoticed).
@compute @workgroup_size(256)
fn cross_entropy_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                      @builtin(local_invocation_index) li: u32) {
    let row = flat_index(wg, groups, li);
    if (row >= params.n) {
        return;
    }
    let base = row * params.classes;
    var m = in0[base];
    for (var c = 1u; c < params.classes; c++) {
        m = max(m, in0[base + c]);
    }
    var s = 0.0;
    for (var c = 0u; c < params.classes; c++) {
        s += exp(in0[base + c] - m);
    }
    let log_s = log(s);
    for (var c = 0u; c < params.classes; c++) {
        out[base + c] = exp(in0[base + c] - m - log_s);
    }
    let label = ints[row];
    if (label < 0 || u32(label) >= params.classes) {
        out2[row] = bitcast<f32>(0x7fc00000u);
    } else {
        out2[row] = log_s + m - in0[base + u32(label)];
    }
}

// One workgroup: the mean of the n row losses in in0 into out[0].
@compute @workgroup_size(256)
fn mean(@builtin(local_invocation_index) li: u32) {
    var s = 0.0;
    for (var j = li; j < params.n; j += 256u) {
        s += in0[j];
    }
    partial[li] = s;
    reduce_partial(li);
    if (li == 0u) {
        out[0] = partial[0] / f32(params.n);
    }
}

// in0 = probabilities, in1 = the one-element upstream gradient.
@compute @workgroup_size(256)
fn cross_entropy_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                          @builtin(local_invocation_index) li: u32) {
    let idx = flat_index(wg, groups, li);
    if (idx >= params.n * params.classes) {
        return;
    }
    let scale = in1[0] / f32(params.n);
    let row = idx / params.classes;
    let onehot = select(0.0, 1.0, u32(ints[row]) == idx % params.classes);
    out[idx] = (in0[idx] - onehot) * scale;
}

// One invocation per lane: (x - mean) * rstd along len into out, the lane's
// rstd = 1 / sqrt(var + eps) into out2 (population variance).
@compute @workgroup_size(256)
fn normalize(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
             @builtin(local_invocation_index) li: u32) {
    let lane = flat_index(wg, groups, li);
    if (lane >= params.outer * params.inner) {
        return;
    }
    let base = (lane / params.inner) * params.len * params.inner + lane % params.inner;
    var sum = 0.0;
    for (var l = 0u; l < params.len; l++) {
        sum += in0[base + l * params.inner];
    }
    let mean = sum / f32(params.len);
    var squares = 0.0;
    for (var l = 0u; l < params.len; l++) {
        let d = in0[base + l * params.inner] - mean;
        squares += d * d;
    }
    let rstd = 1.0 / sqrt(squares / f32(params.len) + params.eps);
    for (var l = 0u; l < params.len; l++) {
        out[base + l * params.inner] = (in0[base + l * params.inner] - mean) * rstd;
    }
    out2[lane] = rstd;
}

// in0 = y (the normalized output), in1 = upstream gradient, out2 = each lane's rstd
// (read only: the family has two f32 inputs). rstd * (g - mean(g) - y * mean(g * y)).
@compute @workgroup_size(256)
fn normalize_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                      @builtin(local_invocation_index) li: u32) {
    let lane = flat_index(wg, groups, li);
    if (lane >= params.outer * params.inner) {
        return;
    }
    let base = (lane / params.inner) * params.len * params.inner + lane % params.inner;
    var sum_g = 0.0;
    var sum_gy = 0.0;
    for (var l = 0u; l < params.len; l++) {
        let at = base + l * params.inner;
        sum_g += in1[at];
        sum_gy += in1[at] * in0[at];
    }
    let n = f32(params.len);
    let rstd = out2[lane];
    for (var l = 0u; l < params.len; l++) {
        let at = base + l * params.inner;
        out[at] = rstd * (in1[at] - sum_g / n - in0[at] * (sum_gy / n));
    }
}
