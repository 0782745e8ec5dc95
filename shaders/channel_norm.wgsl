// Batch normalization of [outer = batch, channels, inner]: one workgroup per channel
// reduces the channel's outer·inner values in shared memory (`workgroup_sums.wgsl`),
// then writes them.
// `stats` holds the mean of each channel, then its variance ([2, channels]);
// `param_grads` the weight gradient, then the bias gradient.

// Mirrors `ChannelNormParams` in crates/wgpu/src/params.rs, field for field.
struct Params {
    outer: u32,
    channels: u32,
    inner: u32,
    // 1: statistics of the batch (written to `stats`); 0: given in `stats`.
    batch_statistics: u32,
    eps: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// The position of the channel's `j`-th value (j < outer·inner).
fn position(c: u32, j: u32) -> u32 {
    return ((j / params.inner) * params.channels + c) * params.inner + j % params.inner;
}

@compute @workgroup_size(256)
fn channel_norm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                @builtin(local_invocation_index) li: u32) {
    let c = wg.y * groups.x + wg.x;
    if (c >= params.channels) {
        return;
    }
    let count = params.outer * params.inner;
    var mean = 0.0;
    var variance = 0.0;
    if (params.batch_statistics == 1u) {
        var s = 0.0;
        for (var j = li; j < count; j += 256u) {
            s += x[position(c, j)];
        }
        mean = workgroup_sums(li, s, 0.0).x / f32(count);
        var squares = 0.0;
        for (var j = li; j < count; j += 256u) {
            let d = x[position(c, j)] - mean;
            squares += d * d;
        }
        variance = workgroup_sums(li, squares, 0.0).x / f32(count);
        if (li == 0u) {
            stats[c] = mean;
            stats[params.channels + c] = variance;
        }
    } else {
        mean = stats[c];
        variance = stats[params.channels + c];
    }
    let scale = weight[c] / sqrt(variance + params.eps);
    let shift = bias[c] - mean * scale;
    for (var j = li; j < count; j += 256u) {
        let at = position(c, j);
        out[at] = x[at] * scale + shift;
    }
}

// out = the input gradient; param_grads = [Σ g·x̂ | Σ g] per channel.
@compute @workgroup_size(256)
fn channel_norm_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                         @builtin(local_invocation_index) li: u32) {
    let c = wg.y * groups.x + wg.x;
    if (c >= params.channels) {
        return;
    }
    let count = params.outer * params.inner;
    let mean = stats[c];
    let rstd = 1.0 / sqrt(stats[params.channels + c] + params.eps);
    var sum_g = 0.0;
    var sum_gx = 0.0;
    for (var j = li; j < count; j += 256u) {
        let at = position(c, j);
        sum_g += grad[at];
        sum_gx += grad[at] * (x[at] - mean);
    }
    let sums = workgroup_sums(li, sum_g, sum_gx);
    if (li == 0u) {
        param_grads[c] = sums.y * rstd;
        param_grads[params.channels + c] = sums.x;
    }
    // dx = w·rstd·(g − Σg/n − x̂·Σg·x̂/n), as g·a + x·b + k (only g·a for given statistics).
    let n = f32(count);
    let a = weight[c] * rstd;
    var b = 0.0;
    var k = 0.0;
    if (params.batch_statistics == 1u) {
        b = -a * rstd * rstd * sums.y / n;
        k = -a * sums.x / n - b * mean;
    }
    for (var j = li; j < count; j += 256u) {
        let at = position(c, j);
        out[at] = grad[at] * a + x[at] * b + k;
    }
}
