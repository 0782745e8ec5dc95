//! The weight gradient: the output gradient's transform, the GEMMs against the
//! transformed tiles, and `dW = Gᵀ·dU·G`.

use super::*;

/// Writes `dM[ξ] = (A·dY·Aᵀ)[ξ]` for every output channel and tile of the `count` images
/// of `dy` into `dm`: `N²` matrices `[O, tiles]`, `stride` floats apart, each already in
/// the GEMM's packed left-hand layout ([`PackedView`]), so the weight gradient's GEMMs
/// skip packing them. Channels go `MR` at a time ([`PackedView`]'s panel height) and
/// tile by tile, so each position's writes advance through its panel in order. Pixels
/// past the plane's edge had no output, so their gradient is zero.
#[inline(always)]
pub(super) fn transform_output_gradient<
    const N: usize,
    const M: usize,
    const R: usize,
    A: Transformed<N, M, R>,
>(
    dy: &[f32],
    g: &Conv2dGeometry,
    input: &Tiling,
    count: usize,
    (dm, stride): (&mut [f32], usize),
) {
    let o = g.out_channels;
    let (oh, ow) = (g.out_h(), g.out_w());
    let per_image = input.per_image();
    let tiles = count * per_image;
    // Rows past `o` in the last panel only produce discarded rows of dU: zero them.
    for padding in o..o.next_multiple_of(MR) {
        for tile in 0..tiles {
            let at = PackedView::index(o, tiles, padding, tile);
            (0..N * N).for_each(|xi| dm[xi * stride + at] = 0.0);
        }
    }
    for j in 0..count {
        for first in (0..o).step_by(MR) {
            for ty in 0..input.tiles_h {
                for tx in 0..input.tiles_w {
                    let (y, x) = (M * ty, M * tx);
                    let tile = j * per_image + ty * input.tiles_w + tx;
                    for channel in first..o.min(first + MR) {
                        let plane = &dy[(j * o + channel) * oh * ow..][..oh * ow];
                        let at = |y: usize, x: usize| if y < oh && x < ow { plane[y * ow + x] } else { 0.0 };
                        // A·dY, column by column: N×M.
                        let columns: [[f32; N]; M] = gather(|dx| {
                            times_transposed(&A::TRANSFORMS.output, &gather(|dy| at(y + dy, x + dx)))
                        });
                        let index = PackedView::index(o, tiles, channel, tile);
                        for row in 0..N {
                            let values =
                                times_transposed(&A::TRANSFORMS.output, &gather(|dx| columns[dx][row]));
                            for (col, value) in values.into_iter().enumerate() {
                                dm[(row * N + col) * stride + index] = value;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `dW = Gᵀ·dU·G` for every kernel, from the `N²` matrices `dU[ξ]` (`[O, C]`,
/// `stride` apart).
pub(super) fn weight_gradient_from<
    const N: usize,
    const M: usize,
    const R: usize,
    A: Transformed<N, M, R>,
>(
    du: &[f32],
    o: usize,
    c: usize,
    stride: usize,
) -> Vec<f32> {
    let mut dw = vec![0.0f32; o * c * R * R];
    for (oc, kernel) in dw.chunks_exact_mut(R * R).enumerate() {
        let at = |xi: usize| du[xi * stride + oc];
        // Gᵀ·dU, column by column: R×N.
        let columns: [[f32; R]; N] =
            gather(|col| times_transposed(&A::TRANSFORMS.kernel, &gather(|i| at(i * N + col))));
        // (Gᵀ·dU)·G, row by row: R×R.
        for row in 0..R {
            let values = times_transposed(&A::TRANSFORMS.kernel, &gather(|k| columns[k][row]));
            kernel[row * R..][..R].copy_from_slice(&values);
        }
    }
    dw
}

/// The weight gradient of convolution `g` by `algorithm` (see [`algorithm`]): per
/// group of images, `dU[ξ] += dM[ξ]·V[ξ]ᵀ` in `N²` GEMMs, each task summing a fixed
/// share of the groups and the task sums added in order (so the result does not depend
/// on timing), then `dW = Gᵀ·dU·G`.
pub fn backward_weight(
    algorithm: Algorithm,
    mem: &HostMemory,
    x: &[f32],
    dy: &[f32],
    g: &Conv2dGeometry,
) -> Vec<f32> {
    match algorithm {
        Algorithm::F4x3 => backward_weight_with::<6, 4, 3, F4x3>(mem, x, dy, g),
        Algorithm::F3x5 => backward_weight_with::<7, 3, 5, F3x5>(mem, x, dy, g),
    }
}

/// [`backward_weight`] with the algorithm `A`.
pub(super) fn backward_weight_with<
    const N: usize,
    const M: usize,
    const R: usize,
    A: Transformed<N, M, R>,
>(
    mem: &HostMemory,
    x: &[f32],
    dy: &[f32],
    g: &Conv2dGeometry,
) -> Vec<f32> {
    let (o, c) = (g.out_channels, g.in_channels);
    let input = Tiling::new(g, [N, M]);
    let per_image = input.per_image();
    let group = images_per_group(g, per_image);
    let groups = crate::conv::image_groups(g.batch, group);
    let per_task = groups.len().div_ceil(rayon::current_num_threads()).max(1);
    let in_image = c * g.in_h * g.in_w;
    let out_image = o * g.out_h() * g.out_w();
    let du_stride = o * c + SKEW;
    let partials: Vec<Scratch> = groups
        .par_chunks(per_task)
        .map(|share| {
            let mut du = mem.scratch(N * N * du_stride);
            for (i, images) in share.iter().enumerate() {
                let tiles = images.len() * per_image;
                let layout = TileLayout::TileRows;
                let v_len = layout.len(N * N, [c, tiles]);
                let dm_stride = PackedView::len(o, tiles) + SKEW;
                let padded_len = images.len() * input.blocked_image(c);
                with_thread_buffer(padded_len + v_len + N * N * dm_stride, |buffer| {
                    let (padded, rest) = buffer.split_at_mut(padded_len);
                    let (v, dm) = rest.split_at_mut(v_len);
                    input.pad_blocked(g, &x[images.start * in_image..images.end * in_image], padded);
                    vectorized(
                        #[inline(always)]
                        || transform_input_by_channel_block::<N, M, R, A>(&input, padded, images.len(), c, v),
                    );
                    let dy = &dy[images.start * out_image..images.end * out_image];
                    vectorized(
                        #[inline(always)]
                        || {
                            transform_output_gradient::<N, M, R, A>(
                                dy,
                                g,
                                &input,
                                images.len(),
                                (dm, dm_stride),
                            )
                        },
                    );
                    for xi in 0..N * N {
                        let left = PackedView::new(&dm[xi * dm_stride..], o, tiles);
                        let right =
                            TransformedTiles { data: v, layout, positions: N * N, xi, size: [c, tiles] };
                        let out = &mut du[xi * du_stride..][..o * c];
                        gemm_packed(
                            o,
                            tiles,
                            c,
                            Left::Packed(left),
                            &right,
                            out,
                            OutputLayout::RowMajor { ldc: c },
                            i > 0,
                        );
                    }
                });
            }
            du
        })
        .collect();
    let du = crate::conv::sum_in_order(mem, partials, N * N * du_stride);
    weight_gradient_from::<N, M, R, A>(&du, o, c, du_stride)
}
