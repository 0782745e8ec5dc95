// Picking positions along an axis by i32 indices, and the adjoint: the indexed tensor
// is [outer, len, inner], a pick [outer, count, inner]; element (o, j, i)'s position is
// ints[o * outer_stride + j * count_stride + i * inner_stride]. An index outside the
// axis picks NaN and scatters nothing. The scatter gathers, for every output element,
// the values whose index names it, in order of j (no atomics, deterministic).

// Mirrors `AxisIndexParams` in crates/wgpu/src/params.rs, field for field.
struct Params {
    outer: u32,
    len: u32,
    inner: u32,
    count: u32,
    outer_stride: u32,
    count_stride: u32,
    inner_stride: u32,
    _pad: u32,
}


fn picked(o: u32, j: u32, i: u32) -> i32 {
    return ints[o * params.outer_stride + j * params.count_stride + i * params.inner_stride];
}

@compute @workgroup_size(256)
fn gather_axis(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
               @builtin(local_invocation_index) li: u32) {
    let idx = flat_index(wg, groups, li);
    if (idx >= params.outer * params.count * params.inner) {
        return;
    }
    let i = idx % params.inner;
    let j = (idx / params.inner) % params.count;
    let o = idx / (params.inner * params.count);
    let p = picked(o, j, i);
    if (p < 0 || u32(p) >= params.len) {
        out[idx] = bitcast<f32>(0x7fc00000u);
        return;
    }
    out[idx] = in0[(o * params.len + u32(p)) * params.inner + i];
}

@compute @workgroup_size(256)
fn scatter_add_axis(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                    @builtin(local_invocation_index) li: u32) {
    let idx = flat_index(wg, groups, li);
    if (idx >= params.outer * params.len * params.inner) {
        return;
    }
    let i = idx % params.inner;
    let p = i32((idx / params.inner) % params.len);
    let o = idx / (params.inner * params.len);
    var sum = 0.0;
    for (var j = 0u; j < params.count; j++) {
        if (picked(o, j, i) == p) {
            sum += in0[(o * params.count + j) * params.inner + i];
        }
    }
    out[idx] = sum;
}
