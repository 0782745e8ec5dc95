// The dropout mask of kiln_tensor::DropoutMask, shared by the dropout kernel and the
// dense layer's fused store: element `index` of the stream drawn from the seed
// (seed_lo, seed_hi) is kept when its 24-bit hash is at least `threshold` (the drop
// probability as a fraction of 2^24).

// The integer finalizer of kiln_tensor::dropout_hash.
fn mix32(x0: u32) -> u32 {
    var v = x0;
    v ^= v >> 16u;
    v *= 0x7feb352du;
    v ^= v >> 15u;
    v *= 0x846ca68bu;
    return v ^ (v >> 16u);
}

fn dropout_keeps(seed_lo: u32, seed_hi: u32, index: u32, threshold: f32) -> bool {
    let key = mix32(mix32(seed_lo) ^ seed_hi);
    let h = mix32(index ^ key) >> 8u;
    return f32(h) >= threshold;
}
