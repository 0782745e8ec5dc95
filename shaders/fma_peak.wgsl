// The fp32 FMA ceiling of the GPU: every invocation runs eight independent vec4 FMA
// chains (64 floating-point operations per iteration), with no memory traffic but one
// store at the end so the compiler keeps the work.

// Mirrors `FmaPeakParams` in crates/wgpu/src/params.rs, field for field.
struct Params {
    iterations: u32,
}


@compute @workgroup_size(256)
fn fma_peak(@builtin(global_invocation_id) gid: vec3<u32>) {
    let seed = f32(gid.x) * 1e-9;
    var a0 = vec4<f32>(seed);
    var a1 = vec4<f32>(seed + 1e-3);
    var a2 = vec4<f32>(seed + 2e-3);
    var a3 = vec4<f32>(seed + 3e-3);
    var a4 = vec4<f32>(seed + 4e-3);
    var a5 = vec4<f32>(seed + 5e-3);
    var a6 = vec4<f32>(seed + 6e-3);
    var a7 = vec4<f32>(seed + 7e-3);
    let m = vec4<f32>(0.9999999);
    let c = vec4<f32>(1e-7);
    for (var i = 0u; i < params.iterations; i++) {
        a0 = fma(a0, m, c);
        a1 = fma(a1, m, c);
        a2 = fma(a2, m, c);
        a3 = fma(a3, m, c);
        a4 = fma(a4, m, c);
        a5 = fma(a5, m, c);
        a6 = fma(a6, m, c);
        a7 = fma(a7, m, c);
    }
    let total = (a0 + a1) + (a2 + a3) + (a4 + a5) + (a6 + a7);
    sink[gid.x % 1024u] = total.x + total.y + total.z + total.w;
}
