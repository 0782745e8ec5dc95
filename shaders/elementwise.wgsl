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

// Unary op codes, in the order of kiln_tensor::UnaryOp.
const NEG: u32 = 0u;
const RELU: u32 = 1u;
const SIGMOID: u32 = 2u;
const TANH: u32 = 3u;
const EXP: u32 = 4u;
const LOG: u32 = 5u;
const SQRT: u32 = 6u;
const POWF: u32 = 7u;
const MUL_SCALAR: u32 = 8u;
const ADD_SCALAR: u32 = 9u;
const CLAMP: u32 = 10u; // between params.scalar and params.bound

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
        case 0u: { return -v; }
        case 1u: { return max(v, 0.0); }
        case 2u: { return 1.0 / (1.0 + exp(-v)); }
        case 3u: { return tanh(v); }
        case 4u: { return exp(v); }
        case 5u: { return log(v); }
        case 6u: { return sqrt(v); }
        case 7u: { return pow(v, params.scalar); }
        case 8u: { return v * params.scalar; }
        case 10u: { return min(max(v, params.scalar), params.bound); }
        default: { return v + params.scalar; }
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
        case 0u: { d = -g; }
        case 1u: { d = select(0.0, g, x > 0.0); }
        case 2u: { d = g * y * (1.0 - y); }
        case 3u: { d = g * (1.0 - y * y); }
        case 4u: { d = g * y; }
        case 5u: { d = g / x; }
        case 6u: { d = g * 0.5 / y; }
        case 7u: { d = g * params.scalar * pow(x, params.scalar - 1.0); }
        case 8u: { d = g * params.scalar; }
        case 10u: { d = select(0.0, g, x >= params.scalar && x <= params.bound); }
        default: { d = g; }
    }
    out[i] = d;
}

fn dim_of(arr: array<vec4<u32>, 2>, axis: u32) -> u32 {
    return arr[axis / 4u][axis % 4u];
}

// Binary op codes: 0 add, 1 sub, 2 mul, 3 div (kiln_tensor::BinaryOp), 4 copy of in0.
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
        case 0u: { out[i] = a + in1[ib]; }
        case 1u: { out[i] = a - in1[ib]; }
        case 2u: { out[i] = a * in1[ib]; }
        case 3u: { out[i] = a / in1[ib]; }
        default: { out[i] = a; }
    }
}
