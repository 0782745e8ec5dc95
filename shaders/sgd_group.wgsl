// The SGD group kernel's parameter block; the kernel itself is generated for the group's
// size by crates/wgpu/src/sgd_group.rs. Mirrors `SgdGroupParams` in
// crates/wgpu/src/params.rs, field for field.
struct Params {
    use_velocity: u32,
    nesterov: u32,
    lr: f32,
    momentum: f32,
    weight_decay: f32,
    tensors: u32,
    pad0: u32,
    pad1: u32,
    // Where each tensor's workgroups end, and its elements (16-byte array stride).
    ends: array<vec4<u32>, 2>,
    lens: array<vec4<u32>, 2>,
}
