// Convolution weight gradient as an implicit GEMM: M = O, N = C·kH·kW,
// K = batch·oH·oW. A is the output gradient, B the transposed im2col of the input.


fn load_a(m: u32, k: u32) -> f32 {
    let plane = params.out_h * params.out_w;
    return grad[((k / plane) * params.out_channels + m) * plane + k % plane];
}

fn load_b(k: u32, n: u32) -> f32 {
    let at = im2col(n, k);
    if (at < 0) {
        return 0.0;
    }
    return input[u32(at)];
}

fn store_c(m: u32, n: u32, value: f32) {
    dw[m * params.n + n] = value;
}
