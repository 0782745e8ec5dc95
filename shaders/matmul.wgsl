// Matrix product C[m, n] = op(A)·op(B) with optional transposes (prepended to
// gemm_tile.wgsl); for a dense layer also + bias[n], ReLU and dropout, applied in the
// store (after dropout_mask.wgsl).

// Mirrors `MatmulParams` in crates/wgpu/src/params.rs, field for field.
struct Params {
    m: u32,
    n: u32,
    k: u32,
    trans_a: u32,
    trans_b: u32,
    // 1: add bias[n] to every row (a dense layer's bias).
    has_bias: u32,
    // 1: ReLU in the store (Activation::Relu).
    relu: u32,
    // 1: dropout after the ReLU (EpilogueDropout): element m·n + n of C is element
    // first_index + m·n + n of the mask stream.
    dropout: u32,
    seed_lo: u32,
    seed_hi: u32,
    first_index: u32,
    threshold: f32,
    scale: f32,
    // Where the first product's A, B and C start in their buffers, and how far apart
    // the `products` products of a batch (stacked along the grid's z) lie.
    a_offset: u32,
    b_offset: u32,
    c_offset: u32,
    products: u32,
    a_stride: u32,
    b_stride: u32,
    c_stride: u32,
}

// Where this workgroup's product's A, B and C start (set by `begin_product`).
var<private> a_base: u32;
var<private> b_base: u32;
var<private> c_base: u32;

fn product_count() -> u32 {
    return params.products;
}

fn begin_product(p: u32) {
    a_base = params.a_offset + p * params.a_stride;
    b_base = params.b_offset + p * params.b_stride;
    c_base = params.c_offset + p * params.c_stride;
}


fn load_a(m: u32, k: u32) -> f32 {
    if (params.trans_a != 0u) {
        return a[a_base + k * params.m + m];
    }
    return a[a_base + m * params.k + k];
}

fn load_b(k: u32, n: u32) -> f32 {
    if (params.trans_b != 0u) {
        return b[b_base + n * params.k + k];
    }
    return b[b_base + k * params.n + n];
}

fn store_c(m: u32, n: u32, value: f32) {
    var v = value;
    if (params.has_bias != 0u) {
        v += bias[n];
    }
    if (params.relu != 0u) {
        v = max(v, 0.0);
    }
    let i = m * params.n + n;
    if (params.dropout != 0u) {
        let kept = dropout_keeps(params.seed_lo, params.seed_hi, params.first_index + i, params.threshold);
        v = select(0.0, v * params.scale, kept);
    }
    c[c_base + i] = v;
}
