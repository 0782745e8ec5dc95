// Max-pooling: forward stores each output's argmax (its position in the input plane);
// backward gathers, for every input pixel, the gradients of the windows whose maximum
// it was (no atomics, deterministic).

// Mirrors `PoolParams` in crates/wgpu/src/params.rs, field for field.
struct Params {
    planes: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    kernel: u32,
    stride: u32,
    padding: u32,
}


@compute @workgroup_size(256)
fn max_pool_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
           @builtin(local_invocation_index) li: u32) {
    let idx = flat_index(wg, groups, li);
    let out_plane = params.out_h * params.out_w;
    if (idx >= params.planes * out_plane) {
        return;
    }
    let plane = idx / out_plane;
    let y = (idx % out_plane) / params.out_w;
    let x = idx % params.out_w;
    let h0 = i32(y * params.stride) - i32(params.padding);
    let w0 = i32(x * params.stride) - i32(params.padding);
    let base = plane * params.in_h * params.in_w;
    var best = 0.0;
    var at = -1;
    for (var h = max(h0, 0); h < min(h0 + i32(params.kernel), i32(params.in_h)); h++) {
        for (var w = max(w0, 0); w < min(w0 + i32(params.kernel), i32(params.in_w)); w++) {
            let pos = h * i32(params.in_w) + w;
            let v = in0[base + u32(pos)];
            if (at < 0 || v > best) {
                best = v;
                at = pos;
            }
        }
    }
    out[idx] = best;
    out_ints[idx] = at;
}

// in0 = output gradient, ints = argmax.
@compute @workgroup_size(256)
fn max_pool_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
            @builtin(local_invocation_index) li: u32) {
    let idx = flat_index(wg, groups, li);
    let in_plane = params.in_h * params.in_w;
    if (idx >= params.planes * in_plane) {
        return;
    }
    let plane = idx / in_plane;
    let pos = idx % in_plane;
    let iy = i32(pos / params.in_w) + i32(params.padding);
    let ix = i32(pos % params.in_w) + i32(params.padding);
    let k = i32(params.kernel);
    let s = i32(params.stride);
    // Windows y with y·s ≤ iy < y·s + k, likewise x.
    let y_first = max((iy - k + s) / s, 0);
    let y_last = min(iy / s, i32(params.out_h) - 1);
    let x_first = max((ix - k + s) / s, 0);
    let x_last = min(ix / s, i32(params.out_w) - 1);
    var g = 0.0;
    for (var y = y_first; y <= y_last; y++) {
        for (var x = x_first; x <= x_last; x++) {
            let o = plane * params.out_h * params.out_w + u32(y) * params.out_w + u32(x);
            if (u32(ints[o]) == pos) {
                g += in0[o];
            }
        }
    }
    out[idx] = g;
}
