// Convolution forward as an implicit GEMM: M = out channels, N = batch·oH·oW,
// K = C·kH·kW. A is the OIHW weight, B the im2col of the input, read on the fly;
// the bias is added, and the ReLU applied when asked, in the store.


fn load_a(m: u32, k: u32) -> f32 {
    return weight[m * params.k + k];
}

fn load_b(k: u32, n: u32) -> f32 {
    let at = im2col(k, n);
    if (at < 0) {
        return 0.0;
    }
    return input[u32(at)];
}

fn store_c(m: u32, n: u32, value: f32) {
    let plane = params.out_h * params.out_w;
    var v = value;
    if (params.has_bias != 0u) {
        v += bias[m];
    }
    if (params.relu != 0u) {
        v = max(v, 0.0);
    }
    output[((n / plane) * params.out_channels + m) * plane + n % plane] = v;
}
