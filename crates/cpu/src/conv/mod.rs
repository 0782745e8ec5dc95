//! Convolution as implicit im2col + GEMM. The unrolled receptive fields are packed
//! straight into the GEMM's panels from a zero-padded copy of the input ([`patches`]),
//! never materialized; the forward pass pads each group's images as the group starts,
//! so the copy is still in cache when its patches are packed. Images are
//! processed in groups whose output pixels sit side by side in one GEMM, so every GEMM
//! has enough columns to run at full speed even when the output planes are tiny (3×3
//! in AlexNet's last layers at 67×67). Groups run in parallel on rayon; the weight
//! gradient sums per-group partial products in a fixed order, so results are
//! bit-identical from run to run. The input gradient of a stride-1 convolution is the
//! forward convolution of the output gradient with the kernels flipped and transposed.

mod col2im;
mod patches;
mod phase_split;
mod winograd;

use kiln_tensor::{Activation, Conv2dGeometry};
use rayon::prelude::*;

use crate::gemm::{Left, OutputLayout, PackedA, Strided, gemm_packed};
use crate::memory::{HostMemory, Scratch};
use crate::reduce::sum_contiguous;
use crate::thread_buffer::with_thread_buffer;
use patches::{InputLayout, PaddedInput, Padding, PatchSource, Patches, PatchesTransposed};

/// Columns a group's GEMM aims for. With 512-deep GEMM blocks, four 14×14 images (784
/// columns) took the 3×3 stride-2 forward of 128 images of 64 channels from 20.55 to
/// 20.2–20.4 ms against three (588), and six (1,176) 21.2 ms; ResNet's 1×1 and 1×1
/// stride-2 forwards sped up by 1–3% (Zen 4, 2 threads). With 256-deep blocks the best
/// had been 512 (a block of patches then stayed in L2; 1024 measured 3–4% slower).
const TARGET_COLUMNS: usize = 768;

/// Sizes of one convolution, derived once.
struct Plan {
    /// Rows of the unrolled matrix: `C·kH·kW`.
    patch: usize,
    /// Output pixels per plane: `oH·oW`.
    plane: usize,
    /// Input elements per image.
    image: usize,
    /// Output elements per image.
    out_image: usize,
    /// Images per group.
    group: usize,
}

impl Plan {
    fn new(g: &Conv2dGeometry) -> Self {
        let plane = g.out_h() * g.out_w();
        let per_thread = g.batch.div_ceil(rayon::current_num_threads()).max(1);
        Plan {
            patch: g.in_channels * g.kernel_h * g.kernel_w,
            plane,
            image: g.in_channels * g.in_h * g.in_w,
            out_image: g.out_channels * plane,
            group: TARGET_COLUMNS.div_ceil(plane).clamp(1, per_thread),
        }
    }

    /// The image range of each group.
    fn groups(&self, batch: usize) -> Vec<std::ops::Range<usize>> {
        image_groups(batch, self.group)
    }
}

/// Copies `count` NCHW images into GEMM layout `[O, count·plane]`.
fn nchw_to_gemm(nchw: &[f32], gemm: &mut [f32], count: usize, o: usize, plane: usize) {
    for (j, image) in nchw.chunks(o * plane).take(count).enumerate() {
        for (c, source) in image.chunks(plane).enumerate() {
            gemm[c * count * plane + j * plane..][..plane].copy_from_slice(source);
        }
    }
}

/// A row-major `rows×cols` matrix over all of `data`.
fn row_major(data: &[f32], cols: usize) -> Strided<'_> {
    Strided { data, offset: 0, row_stride: cols, col_stride: 1 }
}

/// Forward: `out = W · im2col(x) + bias`.
pub fn forward(
    mem: &HostMemory,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    g: &Conv2dGeometry,
    activation: Activation,
) -> Vec<f32> {
    if let Some(algorithm) = winograd::algorithm(g) {
        return winograd::forward(algorithm, mem, x, w, bias, g, activation);
    }
    let p = Plan::new(g);
    let o = g.out_channels;
    let weights = PackedA::new(&row_major(w, p.patch), o, p.patch);
    // Without padding the patches read the input in place, strided pixels gathered as
    // they are packed; with it, each group's padded copy is split by stride phase on
    // the way (one copy of the whole batch first took 1.1 ms more of the 3×3 stride-2
    // forward of 128 images at 28×28 × 64: it had left the cache by the time the
    // patches read it).
    let layout = if g.padding == (0, 0) { InputLayout::Rows } else { InputLayout::Phases };
    let mut out = mem.take(g.batch * p.out_image);
    out.par_chunks_mut(p.group * p.out_image).zip(p.groups(g.batch)).for_each(|(out_group, images)| {
        let count = images.len();
        let width = count * p.plane;
        let group = Conv2dGeometry { batch: count, ..*g };
        let group_x = &x[images.start * p.image..images.end * p.image];
        let input = PaddedInput::new(mem, group_x, &group, layout, Padding::InThisTask);
        let patches = Patches(PatchSource { input: &input, first_image: 0, geometry: &group });
        let layout = OutputLayout::ImagePlanes { plane: p.plane };
        gemm_packed(o, p.patch, width, Left::Packed(weights.view()), &patches, out_group, layout, false);
        if bias.is_some() || activation != Activation::Identity {
            for (i, plane) in out_group.chunks_mut(p.plane).enumerate() {
                let b = bias.map_or(0.0, |bias| bias[i % o]);
                plane.iter_mut().for_each(|v| *v = activation.apply(*v + b));
            }
        }
    });
    out
}

/// Input gradient. For stride 1 (and padding below the kernel size) it is the forward
/// convolution of `dy` with [`flipped_kernels`] over [`flipped_geometry`]; otherwise
/// `col2im(Wᵀ · dy)`.
pub fn backward_input(mem: &HostMemory, grad: &[f32], w: &[f32], g: &Conv2dGeometry) -> Vec<f32> {
    match flipped_geometry(g) {
        Some(flipped) => forward(mem, grad, &flipped_kernels(w, g), None, &flipped, Activation::Identity),
        None => col2im::backward_input(mem, grad, w, g),
    }
}

/// The convolution that maps `dy` to `dx` when the stride is 1: `O` input channels of
/// the output's size, `C` output channels, padding `k − 1 − p` (so the output is the
/// input's size again). `None` for other strides or padding of a kernel size or more.
fn flipped_geometry(g: &Conv2dGeometry) -> Option<Conv2dGeometry> {
    let fits = g.stride == (1, 1) && g.padding.0 < g.kernel_h && g.padding.1 < g.kernel_w;
    fits.then(|| Conv2dGeometry {
        batch: g.batch,
        in_channels: g.out_channels,
        in_h: g.out_h(),
        in_w: g.out_w(),
        out_channels: g.in_channels,
        kernel_h: g.kernel_h,
        kernel_w: g.kernel_w,
        stride: (1, 1),
        padding: (g.kernel_h - 1 - g.padding.0, g.kernel_w - 1 - g.padding.1),
    })
}

/// The weights `[O, C, kH, kW]` as `[C, O, kH, kW]` with each kernel rotated 180°.
fn flipped_kernels(w: &[f32], g: &Conv2dGeometry) -> Vec<f32> {
    let (o, c, taps) = (g.out_channels, g.in_channels, g.kernel_h * g.kernel_w);
    let mut flipped = vec![0.0; w.len()];
    for (oc, kernel) in w.chunks_exact(taps).enumerate() {
        let (out_channel, in_channel) = (oc / c, oc % c);
        let target = &mut flipped[(in_channel * o + out_channel) * taps..][..taps];
        target.iter_mut().zip(kernel.iter().rev()).for_each(|(t, v)| *t = *v);
    }
    flipped
}

/// Weight gradient `Σ dy · im2col(x)ᵀ`, and the bias gradient `Σ dy` per channel when
/// asked.
pub fn backward_weight(
    mem: &HostMemory,
    x: &[f32],
    grad: &[f32],
    g: &Conv2dGeometry,
    with_bias: bool,
) -> (Vec<f32>, Option<Vec<f32>>) {
    if let Some(algorithm) = winograd::algorithm(g) {
        let dw = winograd::backward_weight(algorithm, mem, x, grad, g);
        return (dw, with_bias.then(|| bias_gradient(grad, g)));
    }
    let p = Plan::new(g);
    let o = g.out_channels;
    let input = PaddedInput::new(mem, x, g, InputLayout::Rows, Padding::Parallel);
    // Each task runs a fixed, contiguous share of the groups, accumulating into its own
    // sum; the task sums are added in order, so the result does not depend on timing.
    let groups = p.groups(g.batch);
    let per_task = groups.len().div_ceil(rayon::current_num_threads()).max(1);
    let partials: Vec<Scratch> = groups
        .par_chunks(per_task)
        .map(|share| {
            let mut acc = mem.scratch(o * p.patch);
            for (i, images) in share.iter().enumerate() {
                let count = images.len();
                let width = count * p.plane;
                let patches =
                    PatchesTransposed(PatchSource { input: &input, first_image: images.start, geometry: g });
                let dy = &grad[images.start * p.out_image..images.end * p.out_image];
                let mut multiply = |dy: &[f32]| {
                    let dy = row_major(dy, width);
                    let accumulate = i > 0;
                    gemm_packed(
                        o,
                        width,
                        p.patch,
                        Left::Strided(&dy),
                        &patches,
                        &mut acc,
                        OutputLayout::RowMajor { ldc: p.patch },
                        accumulate,
                    );
                };
                if count == 1 {
                    multiply(dy);
                } else {
                    with_thread_buffer(o * width, |dy_gemm| {
                        nchw_to_gemm(dy, dy_gemm, count, o, p.plane);
                        multiply(dy_gemm);
                    });
                }
            }
            acc
        })
        .collect();
    let dw = sum_in_order(mem, partials, o * p.patch).into_vec();
    let db = with_bias.then(|| bias_gradient(grad, g));
    (dw, db)
}

/// Images `0..batch` in consecutive groups of `group` (the last one possibly shorter).
fn image_groups(batch: usize, group: usize) -> Vec<std::ops::Range<usize>> {
    (0..batch.div_ceil(group)).map(|i| i * group..((i + 1) * group).min(batch)).collect()
}

/// The sum of per-task partial results (each `len` long), added in task order so the
/// result does not depend on timing; the other partials' buffers return to `mem`.
fn sum_in_order<'m>(mem: &'m HostMemory, partials: Vec<Scratch<'m>>, len: usize) -> Scratch<'m> {
    let mut partials = partials.into_iter();
    let mut sum = partials.next().unwrap_or_else(|| mem.scratch_zeroed(len));
    for partial in partials {
        sum.par_chunks_mut(1 << 14).zip(partial.par_chunks(1 << 14)).for_each(|(sum, part)| {
            sum.iter_mut().zip(part).for_each(|(a, b)| *a += b);
        });
    }
    sum
}

/// The bias gradient: the output gradient summed over images and pixels, per channel.
fn bias_gradient(grad: &[f32], g: &Conv2dGeometry) -> Vec<f32> {
    let plane = g.out_h() * g.out_w();
    let out_image = g.out_channels * plane;
    (0..g.out_channels)
        .into_par_iter()
        .map(|c| (0..g.batch).map(|n| sum_contiguous(&grad[n * out_image + c * plane..][..plane])).sum())
        .collect()
}

#[cfg(test)]
mod tests;
