// Elementwise kernels: fill, unary functions and their gradients, broadcasting binary
// arithmetic (and broadcast copies).

// Mirrors `ElementwiseParams` in crates/wgpu/src/params.rs, field for field (WGSL
// starts the arrays at byte 32, their 16-byte alignment; Rust pads explicitly).
struct Params {
    n: u32,
    op: u32,
    rank: u32,
    scalar: f32,
    bound: f32,
    out_dims: array<vec4<u32>, 2>,
    a_strides: array<vec4<u32>, 2>,
    b_strides: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> in0: array<f32>;
@group(0) @binding(2) var<storage, read> in1: array<f32>;
@group(0) @binding(3) var<storage, read> in2: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

// The op codes (UNARY_*, BINARY_*) are `const` declarations generated from
// crates/wgpu/src/op_codes.rs and prepended when the pipeline is built.

@compute @workgroup_size(256)
fn fill(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let i = flat_index(wg, groups, li);
    if (i < params.n) {
        out[i] = params.scalar;
    }
}

fn apply_unary(v: f32) -> f32 {
    switch params.op {
        case UNARY_NEG: { return -v; }
        case UNARY_RELU: { return max(v, 0.0); }
        case UNARY_SIGMOID: { return 1.0 / (1.0 + exp(-v)); }
        case UNARY_TANH: { return tanh(v); }
        case UNARY_EXP: { return exp(v); }
        case UNARY_LOG: { return log(v); }
        case UNARY_SQRT: { return sqrt(v); }
        case UNARY_POWF: { return pow(v, params.scalar); }
        case UNARY_MUL_SCALAR: { return v * params.scalar; }
        case UNARY_CLAMP: { return min(max(v, params.scalar), params.bound); }
        case UNARY_ADD_SCALAR, default: { return v + params.scalar; }
    }
}

@compute @workgroup_size(256)
fn unary(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
         @builtin(local_invocation_index) li: u32) {
    let i = flat_index(wg, groups, li);
    if (i < params.n) {
        out[i] = apply_unary(in0[i]);
    }
}

// in0 = x, in1 = y = op(x), in2 = upstream gradient.
@compute @workgroup_size(256)
fn unary_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                  @builtin(local_invocation_index) li: u32) {
    let i = flat_index(wg, groups, li);
    if (i >= params.n) {
        return;
    }
    let x = in0[i];
    let y = in1[i];
    let g = in2[i];
    var d = 0.0;
    switch params.op {
        case UNARY_NEG: { d = -g; }
        case UNARY_RELU: { d = select(0.0, g, x > 0.0); }
        case UNARY_SIGMOID: { d = g * y * (1.0 - y); }
        case UNARY_TANH: { d = g * (1.0 - y * y); }
        case UNARY_EXP: { d = g * y; }
        case UNARY_LOG: { d = g / x; }
        case UNARY_SQRT: { d = g * 0.5 / y; }
        case UNARY_POWF: { d = g * params.scalar * pow(x, params.scalar - 1.0); }
        case UNARY_MUL_SCALAR: { d = g * params.scalar; }
        case UNARY_CLAMP: { d = select(0.0, g, x >= params.scalar && x <= params.bound); }
        case UNARY_ADD_SCALAR, default: { d = g; }
    }
    out[i] = d;
}

fn dim_of(arr: array<vec4<u32>, 2>, axis: u32) -> u32 {
    return arr[axis / 4u][axis % 4u];
}

@compute @workgroup_size(256)
fn binary(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
          @builtin(local_invocation_index) li: u32) {
    let i = flat_index(wg, groups, li);
    if (i >= params.n) {
        return;
    }
    var rest = i;
    var ia = 0u;
    var ib = 0u;
    for (var axis = i32(params.rank) - 1; axis >= 0; axis--) {
        let d = dim_of(params.out_dims, u32(axis));
        let coord = rest % d;
        rest = rest / d;
        ia += coord * dim_of(params.a_strides, u32(axis));
        ib += coord * dim_of(params.b_strides, u32(axis));
    }
    let a = in0[ia];
    switch params.op {
        case BINARY_ADD: { out[i] = a + in1[ib]; }
        case BINARY_SUB: { out[i] = a - in1[ib]; }
        case BINARY_MUL: { out[i] = a * in1[ib]; }
        case BINARY_DIV: { out[i] = a / in1[ib]; }
        case BINARY_BROADCAST_COPY, default: { out[i] = a; }
    }
}
