//! The forward driver: transformed weights and tiles through the GEMMs, then the
//! output transform `Y = Aᵀ·m·A` with bias and activation.

use super::*;

/// Turns the `N²` products of the group's tiles `run` (a channel's products for every
/// position side by side) into the NCHW output of the group's images (`Aᵀ·m·A`, plus
/// the bias, through `activation`), keeping the pixels inside the plane.
#[inline(always)]
pub(super) fn transform_output<const N: usize, const M: usize, const R: usize, A: Transformed<N, M, R>>(
    Products { m, columns: stride }: Products,
    bias: Option<&[f32]>,
    activation: Activation,
    g: &Conv2dGeometry,
    input: &Tiling,
    run: std::ops::Range<usize>,
    out: &mut [f32],
) {
    let o = g.out_channels;
    let (oh, ow) = (g.out_h(), g.out_w());
    let per_image = input.per_image();
    let tiles = run.len();
    // Each tile's image and top-left output pixel, computed once for every channel.
    let origins: Vec<[usize; 3]> = run
        .map(|t| {
            let tile = t % per_image;
            [t / per_image, M * (tile / input.tiles_w), M * (tile % input.tiles_w)]
        })
        .collect();
    for channel in 0..o {
        let b = bias.map_or(0.0, |b| b[channel]);
        let products = &m[channel * N * N * stride..][..N * N * stride];
        for first in (0..tiles).step_by(LANES) {
            // Aᵀ·m, column by column (M×N), then ·A (M×M), for LANES tiles at once.
            let columns: [[Lanes; M]; N] = gather(
                #[inline(always)]
                |k| {
                    let column = gather(
                        #[inline(always)]
                        |i| {
                            Lanes::load(&products[(i * N + k) * stride + first..(i * N + k) * stride + tiles])
                        },
                    );
                    times(&A::TRANSFORMS.output, &column)
                },
            );
            let block: [[Lanes; M]; M] = gather(
                #[inline(always)]
                |dy| {
                    times(
                        &A::TRANSFORMS.output,
                        &gather(
                            #[inline(always)]
                            |k| columns[k][dy],
                        ),
                    )
                },
            );
            for (lane, &[j, top, left]) in origins[first..].iter().take(LANES).enumerate() {
                let plane = &mut out[(j * o + channel) * oh * ow..][..oh * ow];
                for (dy, row) in block.iter().enumerate() {
                    let y = top + dy;
                    for (dx, value) in row.iter().enumerate() {
                        let x = left + dx;
                        if y < oh && x < ow {
                            plane[y * ow + x] = activation.apply(value.0[lane] + b);
                        }
                    }
                }
            }
        }
    }
}

/// The forward pass's products `M[ξ]`: row `o` of position ξ at `(o·N² + ξ)·columns`.
pub(super) struct Products<'a> {
    pub(super) m: &'a [f32],
    /// Columns of each `[O, columns]` matrix: a run of tiles, padded.
    pub(super) columns: usize,
}

/// Forward convolution `g` by `algorithm` (see [`algorithm`]).
pub fn forward(
    algorithm: Algorithm,
    mem: &HostMemory,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    g: &Conv2dGeometry,
    activation: Activation,
) -> Vec<f32> {
    match algorithm {
        Algorithm::F4x3 => forward_with::<6, 4, 3, F4x3>(mem, x, w, bias, g, activation),
        Algorithm::F3x5 => forward_with::<7, 3, 5, F3x5>(mem, x, w, bias, g, activation),
    }
}

/// [`forward`] with the algorithm `A`.
pub(super) fn forward_with<const N: usize, const M: usize, const R: usize, A: Transformed<N, M, R>>(
    mem: &HostMemory,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    g: &Conv2dGeometry,
    activation: Activation,
) -> Vec<f32> {
    let (o, c) = (g.out_channels, g.in_channels);
    let u = transform_weights::<N, M, R, A>(mem, w, o, c);
    let input = Tiling::new(g, [N, M]);
    let per_image = input.per_image();
    let group = images_per_group(g, per_image);
    let in_image = c * g.in_h * g.in_w;
    let out_image = o * g.out_h() * g.out_w();
    let mut out = mem.take(g.batch * out_image);
    out.par_chunks_mut(group * out_image).zip(crate::conv::image_groups(g.batch, group)).for_each(
        |(out_group, images)| {
            let count = images.len();
            let tiles = count * per_image;
            // The GEMMs run on whole 32-column tiles (the widest kernel's): the padding
            // columns hold zeros and their products are ignored.
            let columns = tiles.next_multiple_of(2 * NR);
            let layout = TileLayout::ChannelRows;
            let v_len = layout.len(N * N, [c, columns]);
            let padded_len = count * c * input.plane();
            let run_length = product_run(N * N, o).min(columns);
            with_thread_buffer(padded_len + v_len + N * N * o * run_length, |buffer| {
                let (padded, rest) = buffer.split_at_mut(padded_len);
                let (v, m) = rest.split_at_mut(v_len);
                input.pad(g, &x[images.start * in_image..images.end * in_image], padded);
                vectorized(
                    #[inline(always)]
                    || transform_input_by_channel::<N, M, R, A>(&input, padded, count, c, v),
                );
                for (channel, tile) in (0..c).flat_map(|channel| (tiles..columns).map(move |t| (channel, t)))
                {
                    let at = layout.index(N * N, [c, columns], 0, channel, tile);
                    (0..N * N).for_each(|xi| v[at + xi * NR] = 0.0);
                }
                // The products of a run of tiles at a time, so that they stay in cache
                // until the output transform reads them.
                for first in (0..columns).step_by(run_length) {
                    let width = run_length.min(columns - first);
                    let tiles_in_run = first..tiles.min(first + width);
                    // The run's panels (whole ones: `first` is a multiple of NR).
                    let v = &v[layout.index(N * N, [c, columns], 0, 0, first)..];
                    for xi in 0..N * N {
                        let v = TransformedTiles { data: v, layout, positions: N * N, xi, size: [c, width] };
                        gemm_packed(
                            o,
                            c,
                            width,
                            u.at(xi),
                            &v,
                            &mut m[xi * width..],
                            OutputLayout::RowMajor { ldc: N * N * width },
                            false,
                        );
                    }
                    let products = Products { m, columns: width };
                    vectorized(
                        #[inline(always)]
                        || {
                            transform_output::<N, M, R, A>(
                                products,
                                bias,
                                activation,
                                g,
                                &input,
                                tiles_in_run,
                                out_group,
                            )
                        },
                    );
                }
            });
        },
    );
    out
}
