// Convolution input gradient as an implicit GEMM: M = C, N = batch·H·W, K = O·kH·kW.
// B[(o, ky, kx), (b, iy, ix)] is the output gradient at the position whose window put
// kernel tap (ky, kx) on input pixel (iy, ix), or zero where no window did (a gather,
// so no atomics are needed).


fn load_a(m: u32, k: u32) -> f32 {
    let area = params.kernel_h * params.kernel_w;
    return weight[((k / area) * params.channels + m) * area + k % area];
}

fn load_b(k: u32, n: u32) -> f32 {
    let tap = split_row(k);
    let o = tap.x;
    let ky = tap.y;
    let kx = tap.z;
    let in_plane = params.in_h * params.in_w;
    let b = n / in_plane;
    let p = n % in_plane;
    let ty = i32(p / params.in_w + params.pad_h) - i32(ky);
    let tx = i32(p % params.in_w + params.pad_w) - i32(kx);
    if (ty < 0 || tx < 0) {
        return 0.0;
    }
    let uy = u32(ty);
    let ux = u32(tx);
    if (uy % params.stride_h != 0u || ux % params.stride_w != 0u) {
        return 0.0;
    }
    let y = uy / params.stride_h;
    let x = ux / params.stride_w;
    if (y >= params.out_h || x >= params.out_w) {
        return 0.0;
    }
    return grad[((b * params.out_channels + o) * params.out_h + y) * params.out_w + x];
}

fn store_c(m: u32, n: u32, value: f32) {
    let in_plane = params.in_h * params.in_w;
    dx[((n / in_plane) * params.channels + m) * in_plane + n % in_plane] = value;
}
