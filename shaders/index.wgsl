// The flat invocation index of 1-D kernels dispatched on a 2-D grid (dimensions are
// capped at 65,535 workgroups, so large tensors spill into y). Prepended to the
// elementwise, reduction, pooling and optimizer kernels; workgroups are 256 wide.

fn flat_index(wg: vec3<u32>, groups: vec3<u32>, local: u32) -> u32 {
    return (wg.y * groups.x + wg.x) * 256u + local;
}
