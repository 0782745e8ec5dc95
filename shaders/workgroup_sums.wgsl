// Two sums across a 256-wide workgroup at once, for the normalization kernels.

var<workgroup> partial: array<f32, 256>;
var<workgroup> partial2: array<f32, 256>;

// Tree sums of `partial` and `partial2`; every invocation returns both totals.
fn workgroup_sums(li: u32, a: f32, b: f32) -> vec2<f32> {
    partial[li] = a;
    partial2[li] = b;
    workgroupBarrier();
    for (var width = 128u; width > 0u; width >>= 1u) {
        if (li < width) {
            partial[li] += partial[li + width];
            partial2[li] += partial2[li + width];
        }
        workgroupBarrier();
    }
    let totals = vec2<f32>(partial[0], partial2[0]);
    workgroupBarrier();
    return totals;
}
