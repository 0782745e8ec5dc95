//! Winograd convolutions for stride-1 3×3 and 5×5 kernels: each `M×M` block of output
//! pixels comes from an `N×N` input tile through `N²` products instead of `M²·R²`:
//! F(4×4, 3×3) does 36 products instead of 144 (4× less GEMM work; AlexNet's
//! conv3–conv5), F(3×3, 5×5) 49 instead of 225 (4.6×; conv2). Forward pass, input
//! gradient (through the flipped-kernel form, itself a forward convolution) and weight
//! gradient all run this way.
//!
//! With `G`, `Bᵀ`, `Aᵀ` the algorithm's transforms ([`transforms`]), the weights
//! become `U = G·g·Gᵀ` (`N²` matrices `[O, C]`, one per tile position ξ), each input
//! tile `V = Bᵀ·d·B` (`N²` matrices `[C, tiles]`), the products `M[ξ] = U[ξ]·V[ξ]` run
//! on the packed GEMM, and each output block is `Y = Aᵀ·m·A`. Every step runs in a
//! fixed order, so results are identical from run to run. The transforms add rounding:
//! the tests bound the error against a float64 direct convolution.

mod transforms;

use kiln_tensor::{Activation, Conv2dGeometry};
use rayon::prelude::*;

use crate::gemm::{GemmKernel, Left, MR, NR, OutputLayout, PackB, PackedPanel, PackedView, gemm_packed};
use crate::memory::{HostMemory, Scratch};
use crate::scratch::with_scratch;
use transforms::{Algorithm as Transformed, F3x5, F4x3, LANES, Lanes, gather, times, times_transposed};

/// Output columns (tiles) a group's GEMMs aim for.
const TARGET_TILES: usize = 256;

/// Bytes of products the forward pass computes before their output transform, so that
/// they are still in the L2 cache when it reads them (512 KiB and 2 MiB measured the
/// same; computing a whole group's products first, up to 13 MB, was 6–9% slower).
const PRODUCT_RUN_BYTES: usize = 1 << 20;

/// Floats added between the matrices of a transform, so that they do not start at
/// addresses a multiple of 4 KiB apart: the streams written (and read) together would
/// otherwise all map to the same cache sets and evict each other.
const SKEW: usize = 16;

/// Fewest channels (in and out) for which the transforms pay for themselves.
const MIN_CHANNELS: usize = 16;

/// A Winograd algorithm Kiln runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// F(4×4, 3×3): 6×6 tiles, 36 products.
    F4x3,
    /// F(3×3, 5×5): 7×7 tiles, 49 products.
    F3x5,
}

/// The algorithm that runs convolution `g`, if any: square 3×3 or 5×5 kernels, stride
/// 1, padding below the kernel size, and enough channels.
pub fn algorithm(g: &Conv2dGeometry) -> Option<Algorithm> {
    let algorithm = match (g.kernel_h, g.kernel_w) {
        (3, 3) => Algorithm::F4x3,
        (5, 5) => Algorithm::F3x5,
        _ => return None,
    };
    let fits = g.stride == (1, 1)
        && g.padding.0 < g.kernel_h
        && g.padding.1 < g.kernel_w
        && g.in_channels >= MIN_CHANNELS
        && g.out_channels >= MIN_CHANNELS
        && g.out_h() > 0
        && g.out_w() > 0;
    fits.then_some(algorithm)
}

/// The transformed weights `U[ξ]`: `N²` `[O, C]` matrices in the GEMM's packed
/// left-hand layout, `stride` floats apart in one buffer from the device's memory.
struct TransformedWeights<'m> {
    data: Scratch<'m>,
    stride: usize,
    o: usize,
    c: usize,
}

impl TransformedWeights<'_> {
    /// `U[ξ]` as a GEMM's left-hand side.
    fn at(&self, xi: usize) -> Left<'_> {
        Left::Packed(PackedView::new(&self.data[xi * self.stride..], self.o, self.c))
    }
}

/// `U[ξ] = G·g·Gᵀ` for every kernel, written straight into the packed layout (no
/// intermediate matrices, no second packing pass), in parallel: each task owns one
/// packed panel (rows of output channels × a depth block of input channels) in all `N²`
/// matrices.
fn transform_weights<'m, const N: usize, const M: usize, const R: usize, A: Transformed<N, M, R>>(
    mem: &'m HostMemory,
    w: &[f32],
    o: usize,
    c: usize,
) -> TransformedWeights<'m> {
    let stride = PackedView::len(o, c) + SKEW;
    let mut u = mem.scratch(N * N * stride);
    // The same panel of every position's matrix, gathered per task.
    let mut tasks: Vec<Vec<PackedPanel>> = Vec::new();
    for matrix in u.chunks_exact_mut(stride) {
        let panels = PackedView::panels_mut(matrix, o, c);
        tasks.resize_with(panels.len(), Vec::new);
        tasks.iter_mut().zip(panels).for_each(|(task, panel)| task.push(panel));
    }
    tasks.into_par_iter().for_each(|mut positions| {
        let (first_row, depth) = (positions[0].first_row, positions[0].depth.clone());
        for r in 0..MR {
            let oc = first_row + r;
            for (k, channel) in depth.clone().enumerate() {
                // Rows past `o` in the last panel only produce discarded rows: zeros.
                let values: [[f32; N]; N] = if oc < o {
                    let g = &w[(oc * c + channel) * R * R..][..R * R];
                    // G·g, column by column: N×R; then (G·g)·Gᵀ, row by row: N×N.
                    let columns: [[f32; N]; R] =
                        gather(|col| times(&A::TRANSFORMS.kernel, &gather(|k| g[k * R + col])));
                    gather(|row| times(&A::TRANSFORMS.kernel, &gather(|k| columns[k][row])))
                } else {
                    [[0.0; N]; N]
                };
                for (panel, value) in positions.iter_mut().zip(values.iter().flatten()) {
                    panel.set(r, k, *value);
                }
            }
        }
    });
    TransformedWeights { data: u, stride, o, c }
}

/// How the input is cut into `N×N` tiles: each image plane zero-padded so that every
/// tile lies inside (the convolution's padding before, and after enough to complete the
/// last tile). A group's images are padded into scratch just before their transform.
#[derive(Clone, Copy, Debug)]
struct Tiling {
    /// Padded plane height and width.
    height: usize,
    width: usize,
    /// Tiles per column and per row of an output plane.
    tiles_h: usize,
    tiles_w: usize,
}

impl Tiling {
    /// The tiling of `g` for tiles of `n` pixels a side producing `m×m` output blocks.
    fn new(g: &Conv2dGeometry, [n, m]: [usize; 2]) -> Self {
        let (tiles_h, tiles_w) = (g.out_h().div_ceil(m), g.out_w().div_ceil(m));
        Tiling { height: m * tiles_h + n - m, width: m * tiles_w + n - m, tiles_h, tiles_w }
    }

    /// Tiles per image plane.
    fn per_image(&self) -> usize {
        self.tiles_h * self.tiles_w
    }

    /// Floats of one padded plane.
    fn plane(&self) -> usize {
        self.height * self.width
    }

    /// Writes the padded planes of `x` (whole NCHW images of `g`) into `out`.
    fn pad(&self, g: &Conv2dGeometry, x: &[f32], out: &mut [f32]) {
        let (height, width) = (self.height, self.width);
        for (out, plane) in out.chunks_exact_mut(self.plane()).zip(x.chunks_exact(g.in_h * g.in_w)) {
            let rows_before = g.padding.0.min(height);
            out[..rows_before * width].fill(0.0);
            let mut filled = rows_before;
            for row in plane.chunks_exact(g.in_w).take(height - rows_before) {
                let line = &mut out[filled * width..][..width];
                let (px, len) = (g.padding.1, g.in_w.min(width - g.padding.1));
                line[..px].fill(0.0);
                line[px..px + len].copy_from_slice(&row[..len]);
                line[px + len..].fill(0.0);
                filled += 1;
            }
            out[filled * width..].fill(0.0);
        }
    }

    /// Floats of one image's padded input: its channels in blocks of [`LANES`] (the
    /// last block filled up with zero channels).
    fn blocked_image(&self, channels: usize) -> usize {
        channels.div_ceil(LANES) * self.plane() * LANES
    }

    /// Writes the padded input of `x` (whole NCHW images of `g`) into `out`, channel
    /// blocked (`[image][block][y][x][lane]`, [`Tiling::blocked_image`] floats per
    /// image): the input transform then loads one pixel of [`LANES`] channels as one
    /// vector and transforms as many channels with each operation.
    fn pad_blocked(&self, g: &Conv2dGeometry, x: &[f32], out: &mut [f32]) {
        let c = g.in_channels;
        let width = self.width;
        out.fill(0.0);
        for (padded, image) in
            out.chunks_exact_mut(self.blocked_image(c)).zip(x.chunks_exact(c * g.in_h * g.in_w))
        {
            for (channel, plane) in image.chunks_exact(g.in_h * g.in_w).enumerate() {
                let block = &mut padded[(channel / LANES) * self.plane() * LANES..][..self.plane() * LANES];
                let lane = channel % LANES;
                for (y, row) in
                    plane.chunks_exact(g.in_w).enumerate().take(self.height.saturating_sub(g.padding.0))
                {
                    let line = &mut block[(y + g.padding.0) * width * LANES..][..width * LANES];
                    for (value, x) in row.iter().zip(g.padding.1..width) {
                        line[x * LANES + lane] = *value;
                    }
                }
            }
        }
    }
}

/// How the transformed input tiles of a group are stored: in the GEMM's packed-panel
/// layout for the product they feed (rows of [`NR`] values), with the rows of every
/// position ξ side by side, so that one tile's `N²` values land in one small block
/// (the transform writes a few cache lines, not `N²` distant streams) and the GEMM's
/// packing copies whole rows.
#[derive(Clone, Copy, Debug)]
enum TileLayout {
    /// `V[ξ]` as `[C, tiles]` (the forward pass's right-hand side): panels of 16
    /// tiles, one channel per row.
    ChannelRows,
    /// `V[ξ]ᵀ` as `[tiles, C]` (the weight gradient's right-hand side): panels of 16
    /// channels, one tile per row.
    TileRows,
}

impl TileLayout {
    /// Floats the matrices of all `positions` take, padded to whole panels.
    fn len(self, positions: usize, [channels, tiles]: [usize; 2]) -> usize {
        positions
            * match self {
                TileLayout::ChannelRows => channels * tiles.next_multiple_of(NR),
                TileLayout::TileRows => channels.next_multiple_of(NR) * tiles,
            }
    }

    /// Index of position `xi`'s value for channel `c`, tile `t`; the next position's
    /// value is [`NR`] floats further.
    fn index(self, positions: usize, [channels, tiles]: [usize; 2], xi: usize, c: usize, t: usize) -> usize {
        let (row, lane) = match self {
            TileLayout::ChannelRows => ((t / NR) * channels + c, t % NR),
            TileLayout::TileRows => ((c / NR) * tiles + t, c % NR),
        };
        (row * positions + xi) * NR + lane
    }
}

/// One position's transformed tiles as a GEMM's right-hand side.
struct TransformedTiles<'a> {
    data: &'a [f32],
    layout: TileLayout,
    /// Positions stored side by side.
    positions: usize,
    /// The position this matrix is.
    xi: usize,
    /// Channels and tiles of the matrix.
    size: [usize; 2],
}

impl PackB for TransformedTiles<'_> {
    fn pack(&self, first_row: usize, rows: usize, first_col: usize, cols: usize, panel: &mut [f32]) {
        debug_assert!(first_col.is_multiple_of(NR) && cols <= NR);
        if rows == 0 {
            return;
        }
        let (c, t) = match self.layout {
            TileLayout::ChannelRows => (first_row, first_col),
            TileLayout::TileRows => (first_col, first_row),
        };
        let start = self.layout.index(self.positions, self.size, self.xi, c, t);
        // In both layouts the matrix's next row lies one block of all positions further.
        let stride = self.positions * NR;
        let source = &self.data[start..start + (rows - 1) * stride + NR];
        for (p, out) in panel.chunks_exact_mut(NR).take(rows).enumerate() {
            out.copy_from_slice(&source[p * stride..p * stride + NR]);
        }
    }
}

/// Writes `V[ξ] = (Bᵀ·d·B)[ξ]` for every channel and tile of the `count` padded images
/// in `padded` ([`Tiling::pad`]) into `v` (`N²` matrices in [`TileLayout::ChannelRows`],
/// the forward pass's), one channel at a time: each tile's values land in consecutive
/// cache lines of its channel's row. Per channel and row of tiles, `Bᵀ·d` runs over
/// whole input rows at once, then `·B` over the tiles of the row.
#[inline(always)]
fn transform_input_by_channel<const N: usize, const M: usize, const R: usize, A: Transformed<N, M, R>>(
    input: &Tiling,
    padded: &[f32],
    count: usize,
    c: usize,
    v: &mut [f32],
) {
    let per_image = input.per_image();
    let tiles = count * per_image;
    let (plane, width) = (input.plane(), input.width);
    let mut columns = vec![[0.0f32; N]; width];
    for j in 0..count {
        for channel in 0..c {
            let source = &padded[(j * c + channel) * plane..][..plane];
            for ty in 0..input.tiles_h {
                let rows: [&[f32]; N] = gather(|i| &source[(M * ty + i) * width..][..width]);
                // Bᵀ·d for every input column of this row of tiles.
                for (x, column) in columns.iter_mut().enumerate() {
                    *column = times(&A::TRANSFORMS.input, &gather(|i| rows[i][x]));
                }
                for tx in 0..input.tiles_w {
                    let tile = j * per_image + ty * input.tiles_w + tx;
                    let at = TileLayout::ChannelRows.index(N * N, [c, tiles], 0, channel, tile);
                    let window = &columns[M * tx..M * tx + N];
                    for row in 0..N {
                        let values = times(&A::TRANSFORMS.input, &gather(|k| window[k][row]));
                        for (col, value) in values.into_iter().enumerate() {
                            v[at + (row * N + col) * NR] = value;
                        }
                    }
                }
            }
        }
    }
}

/// Writes `V[ξ] = (Bᵀ·d·B)[ξ]` for every channel and tile of the `count` images in
/// `padded` ([`Tiling::pad_blocked`]) into `v` (`N²` matrices in
/// [`TileLayout::TileRows`], the weight gradient's), [`LANES`] channels at once: one
/// vector operation per value of a channel block, one vector store per position (a
/// panel row holds [`NR`] = [`LANES`] channels). Per channel block and row of tiles,
/// `Bᵀ·d` runs over whole input rows, then `·B` over the tiles of the row.
#[inline(always)]
fn transform_input_by_channel_block<
    const N: usize,
    const M: usize,
    const R: usize,
    A: Transformed<N, M, R>,
>(
    input: &Tiling,
    padded: &[f32],
    count: usize,
    c: usize,
    v: &mut [f32],
) {
    let per_image = input.per_image();
    let tiles = count * per_image;
    let width = input.width;
    let mut columns = vec![[Lanes::ZERO; N]; width];
    for (j, image) in padded.chunks_exact(input.blocked_image(c)).take(count).enumerate() {
        for (block, source) in image.chunks_exact(input.plane() * LANES).enumerate() {
            let first_channel = block * LANES;
            for ty in 0..input.tiles_h {
                let rows: [&[f32]; N] = gather(|i| &source[(M * ty + i) * width * LANES..][..width * LANES]);
                // Bᵀ·d for every input column of this row of tiles.
                for (x, column) in columns.iter_mut().enumerate() {
                    *column = times(&A::TRANSFORMS.input, &gather(|i| Lanes::load(&rows[i][x * LANES..])));
                }
                for tx in 0..input.tiles_w {
                    let tile = j * per_image + ty * input.tiles_w + tx;
                    let window = &columns[M * tx..M * tx + N];
                    let transformed: [[Lanes; N]; N] =
                        gather(|row| times(&A::TRANSFORMS.input, &gather(|k| window[k][row])));
                    for (xi, value) in transformed.iter().flatten().enumerate() {
                        let at = TileLayout::TileRows.index(N * N, [c, tiles], xi, first_channel, tile);
                        v[at..at + LANES].copy_from_slice(&value.0);
                    }
                }
            }
        }
    }
}

/// Turns the `N²` products of the group's tiles `run` (a channel's products for every
/// position side by side) into the NCHW output of the group's images (`Aᵀ·m·A`, plus
/// the bias, through `activation`), keeping the pixels inside the plane.
#[inline(always)]
fn transform_output<const N: usize, const M: usize, const R: usize, A: Transformed<N, M, R>>(
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
struct Products<'a> {
    m: &'a [f32],
    /// Columns of each `[O, columns]` matrix: a run of tiles, padded.
    columns: usize,
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
fn forward_with<const N: usize, const M: usize, const R: usize, A: Transformed<N, M, R>>(
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
    out.par_chunks_mut(group * out_image).zip(super::image_groups(g.batch, group)).for_each(
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
            with_scratch(padded_len + v_len + N * N * o * run_length, |scratch| {
                let (padded, rest) = scratch.split_at_mut(padded_len);
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

/// Runs `work` compiled for AVX-512F when the process's GEMM kernel is the AVX-512 one
/// (the transforms' 16-lane values then take one register instead of four), else for
/// the build's baseline. `work` and the transforms it calls are inlined into the
/// AVX-512 copy (`#[inline(always)]`); the arithmetic is the same, so are the results.
#[inline(always)]
fn vectorized<T>(work: impl FnOnce() -> T) -> T {
    #[cfg(target_arch = "x86_64")]
    if GemmKernel::detect() == GemmKernel::Avx512 {
        #[target_feature(enable = "avx512f")]
        fn with_avx512<T>(work: impl FnOnce() -> T) -> T {
            work()
        }
        // SAFETY: the AVX-512 GEMM kernel is only chosen on CPUs that run AVX-512F.
        return unsafe { with_avx512(work) };
    }
    work()
}

/// Tiles whose products (`positions · o` floats each) are computed and turned into
/// output at a time: a multiple of the widest GEMM tile (32 columns), the products
/// taking about [`PRODUCT_RUN_BYTES`].
fn product_run(positions: usize, o: usize) -> usize {
    (PRODUCT_RUN_BYTES / (positions * o * size_of::<f32>())).next_multiple_of(2 * NR)
}

/// Images per group: about [`TARGET_TILES`] tiles, and at least one group per thread.
fn images_per_group(g: &Conv2dGeometry, per_image: usize) -> usize {
    let per_thread = g.batch.div_ceil(rayon::current_num_threads()).max(1);
    TARGET_TILES.div_ceil(per_image).clamp(1, per_thread)
}

/// Writes `dM[ξ] = (A·dY·Aᵀ)[ξ]` for every output channel and tile of the `count` images
/// of `dy` into `dm`: `N²` matrices `[O, tiles]`, `stride` floats apart, each already in
/// the GEMM's packed left-hand layout ([`PackedView`]), so the weight gradient's GEMMs
/// skip packing them. Channels go `MR` at a time ([`PackedView`]'s panel height) and
/// tile by tile, so each position's writes advance through its panel in order. Pixels
/// past the plane's edge had no output, so their gradient is zero.
#[inline(always)]
fn transform_output_gradient<const N: usize, const M: usize, const R: usize, A: Transformed<N, M, R>>(
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
fn weight_gradient_from<const N: usize, const M: usize, const R: usize, A: Transformed<N, M, R>>(
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
fn backward_weight_with<const N: usize, const M: usize, const R: usize, A: Transformed<N, M, R>>(
    mem: &HostMemory,
    x: &[f32],
    dy: &[f32],
    g: &Conv2dGeometry,
) -> Vec<f32> {
    let (o, c) = (g.out_channels, g.in_channels);
    let input = Tiling::new(g, [N, M]);
    let per_image = input.per_image();
    let group = images_per_group(g, per_image);
    let groups = super::image_groups(g.batch, group);
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
                with_scratch(padded_len + v_len + N * N * dm_stride, |scratch| {
                    let (padded, rest) = scratch.split_at_mut(padded_len);
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
    let du = super::sum_in_order(mem, partials, N * N * du_stride);
    weight_gradient_from::<N, M, R, A>(&du, o, c, du_stride)
}
