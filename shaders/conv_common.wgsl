// Convolution geometry and the on-the-fly im2col read shared by the three convolution
// kernels (prepended before each kernel's accessors).

// Mirrors `ConvParams` in crates/wgpu/src/params.rs, field for field.
struct Params {
    m: u32,
    n: u32,
    k: u32,
    batch: u32,
    channels: u32,
    in_h: u32,
    in_w: u32,
    out_channels: u32,
    kernel_h: u32,
    kernel_w: u32,
    stride_h: u32,
    stride_w: u32,
    pad_h: u32,
    pad_w: u32,
    out_h: u32,
    out_w: u32,
    has_bias: u32,
    // 1: ReLU in the forward kernel's store (Activation::Relu); 0 otherwise.
    relu: u32,
}


// One product per dispatch (the tiled GEMM's batching hooks).
fn product_count() -> u32 {
    return 1u;
}

fn begin_product(p: u32) {}

// Splits an unrolled row index (c·kH + ky)·kW + kx into (c, ky, kx); for the input
// gradient the leading index is the output channel instead of c.
fn split_row(row: u32) -> vec3<u32> {
    let area = params.kernel_h * params.kernel_w;
    let r = row % area;
    return vec3<u32>(row / area, r / params.kernel_w, r % params.kernel_w);
}

// Input pixel for unrolled row `row` (= (c·kH + ky)·kW + kx) and output position
// `column` (= (b·oH + y)·oW + x); zero in the padding.
fn im2col(row: u32, column: u32) -> i32 {
    let tap = split_row(row);
    let c = tap.x;
    let ky = tap.y;
    let kx = tap.z;
    let plane = params.out_h * params.out_w;
    let b = column / plane;
    let p = column % plane;
    let iy = i32((p / params.out_w) * params.stride_h + ky) - i32(params.pad_h);
    let ix = i32((p % params.out_w) * params.stride_w + kx) - i32(params.pad_w);
    if (iy < 0 || ix < 0 || iy >= i32(params.in_h) || ix >= i32(params.in_w)) {
        return -1;
    }
    return i32(((b * params.channels + c) * params.in_h + u32(iy)) * params.in_w + u32(ix));
}
