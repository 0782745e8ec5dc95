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
    offset: u32,
    out_dims: array<vec4<u32>, 2>,
    a_strides: array<vec4<u32>, 2>,
    b_strides: array<vec4<u32>, 2>,
}


// Generated and prepended when the pipeline is built (crates/wgpu/src/op_codes.rs): the
// BINARY_* op codes, and `apply_unary` and `unary_gradient` with one case per op of
// kiln-tensor's table of unary ops (crates/tensor/src/unary_ops.rs).

@compute @workgroup_size(256)
fn fill(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let i = flat_index(wg, groups, li);
    if (i < params.n) {
        out[i] = params.scalar;
    }
}

@compute @workgroup_size(256)
fn unary(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
         @builtin(local_invocation_index) li: u32) {
    let i = flat_index(wg, groups, li);
    if (i < params.n) {
        out[i] = apply_unary(params.op, in0[i], params.scalar, params.bound);
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
    out[i] = unary_gradient(params.op, in0[i], in1[i], in2[i], params.scalar, params.bound);
}

// By its bits: a compiler may fold `v != v` to false under fast-math assumptions.
fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
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
        case BINARY_BROADCAST_COPY: { out[i] = a; }
        // WGSL's max and min leave NaN unspecified; these propagate it, as the CPU does.
        case BINARY_MAXIMUM: { let b = in1[ib]; out[i] = select(max(a, b), a + b, is_nan(a) || is_nan(b)); }
        case BINARY_MINIMUM: { let b = in1[ib]; out[i] = select(min(a, b), a + b, is_nan(a) || is_nan(b)); }
        case BINARY_KEEP_WHERE: { out[i] = select(0.0, a, in1[ib] != 0.0); }
        case BINARY_GREATER: { out[i] = select(0.0, 1.0, a > in1[ib]); }
        case BINARY_GREATER_EQUAL: { out[i] = select(0.0, 1.0, a >= in1[ib]); }
        case BINARY_EQUAL: { out[i] = select(0.0, 1.0, a == in1[ib]); }
        case BINARY_ADD_RELU: { out[i] = max(a + in1[ib], 0.0); }
        default: { out[i] = bitcast<f32>(UNKNOWN_CODE_NAN_BASE | params.op); }
    }
}

// Storage index of element `i` of a strided view: `offset + Σ coord·stride`, the view's
// dimensions in `out_dims` and strides in `a_strides`.
fn view_index(i: u32) -> u32 {
    var rest = i;
    var index = params.offset;
    for (var axis = i32(params.rank) - 1; axis >= 0; axis--) {
        let d = dim_of(params.out_dims, u32(axis));
        index += (rest % d) * dim_of(params.a_strides, u32(axis));
        rest = rest / d;
    }
    return index;
}

// in0 = the viewed buffer; out = the view's elements, contiguous.
@compute @workgroup_size(256)
fn gather_view(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
               @builtin(local_invocation_index) li: u32) {
    let i = flat_index(wg, groups, li);
    if (i < params.n) {
        out[i] = in0[view_index(i)];
    }
}

// in0 = the values, contiguous; out = the buffer the view is written into.
@compute @workgroup_size(256)
fn scatter_view(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                @builtin(local_invocation_index) li: u32) {
    let i = flat_index(wg, groups, li);
    if (i < params.n) {
        out[view_index(i)] = in0[i];
    }
}
