// Inverted dropout with the counter-based mask of kiln_tensor::DropoutMask: element i
// of the tensor is element first_index + i of the mask stream drawn from the seed
// (dropout_mask.wgsl).

// Mirrors `DropoutParams` in crates/wgpu/src/params.rs, field for field.
struct Params {
    n: u32,
    seed_lo: u32,
    seed_hi: u32,
    first_index: u32,
    threshold: f32,
    scale: f32,
}


@compute @workgroup_size(256)
fn dropout(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
           @builtin(local_invocation_index) li: u32) {
    let i = flat_index(wg, groups, li);
    if (i >= params.n) {
        return;
    }
    let kept = dropout_keeps(params.seed_lo, params.seed_hi, params.first_index + i, params.threshold);
    out[i] = select(0.0, x[i] * params.scale, kept);
}
