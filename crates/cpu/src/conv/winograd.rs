//! Winograd F(2×2, 3×3) for stride-1 3×3 convolutions: each 2×2 block of output
//! pixels comes from a 4×4 input tile through 16 products instead of 36, so the GEMM
//! work is 2.25× smaller (AlexNet's conv3–conv5: forward, input gradient through the
//! flipped-kernel form, and weight gradient).
//!
//! With `G`, `Bᵀ`, `Aᵀ` the F(2, 3) transforms (Lavin & Gray, 2016), the weights become
//! `U = G·g·Gᵀ` (16 matrices `[O, C]`, one per tile position ξ), each input tile
//! `V = Bᵀ·d·B` (16 matrices `[C, tiles]`), the 16 products `M[ξ] = U[ξ]·V[ξ]` run
//! on the packed GEMM, and each output block is `Y = Aᵀ·m·A`. Every step runs in a fixed
//! order, so results are identical from run to run. The transforms add rounding: the
//! tests bound the error against a float64 direct convolution.

use kiln_tensor::{Activation, Conv2dGeometry};
use rayon::prelude::*;

use crate::gemm::{Left, NR, OutputLayout, PackB, PackedA, Strided, gemm_packed};
use crate::memory::HostMemory;
use crate::scratch::with_scratch;

/// Tile positions: a 4×4 input tile gives 16 products.
const POSITIONS: usize = 16;

/// Output columns (tiles) a group's 16 GEMMs aim for.
const TARGET_TILES: usize = 256;

/// Floats added between the 16 matrices of a transform, so that they do not start at
/// addresses a multiple of 4 KiB apart: the 16 streams written (and read) together
/// would otherwise all map to the same cache sets and evict each other.
const SKEW: usize = 16;

/// Fewest channels (in and out) for which the transforms pay for themselves.
const MIN_CHANNELS: usize = 16;

/// Whether Winograd F(2×2, 3×3) runs convolution `g`: 3×3 kernels, stride 1, padding
/// below the kernel size, and enough channels.
pub fn applies(g: &Conv2dGeometry) -> bool {
    (g.kernel_h, g.kernel_w) == (3, 3)
        && g.stride == (1, 1)
        && g.padding.0 < 3
        && g.padding.1 < 3
        && g.in_channels >= MIN_CHANNELS
        && g.out_channels >= MIN_CHANNELS
        && g.out_h() > 0
        && g.out_w() > 0
}

/// `U[ξ] = G·g·Gᵀ` for every kernel, as 16 packed `[O, C]` matrices.
fn transform_weights(w: &[f32], o: usize, c: usize) -> Vec<PackedA> {
    let stride = o * c + SKEW;
    let mut u = vec![0.0f32; POSITIONS * stride];
    for (oc, g) in w.chunks_exact(9).enumerate() {
        // G·g: 4×3.
        let mut t = [[0.0f32; 3]; 4];
        for col in 0..3 {
            let (g0, g1, g2) = (g[col], g[3 + col], g[6 + col]);
            t[0][col] = g0;
            t[1][col] = 0.5 * (g0 + g1 + g2);
            t[2][col] = 0.5 * (g0 - g1 + g2);
            t[3][col] = g2;
        }
        // (G·g)·Gᵀ: 4×4.
        for (row, t) in t.iter().enumerate() {
            let values = [t[0], 0.5 * (t[0] + t[1] + t[2]), 0.5 * (t[0] - t[1] + t[2]), t[2]];
            for (col, v) in values.into_iter().enumerate() {
                u[(row * 4 + col) * stride + oc] = v;
            }
        }
    }
    u.chunks_exact(stride)
        .map(|m| PackedA::new(&Strided { data: &m[..o * c], offset: 0, row_stride: c, col_stride: 1 }, o, c))
        .collect()
}

/// The input zero-padded so that every 4×4 tile lies inside: the convolution's padding
/// before, and after enough to complete the last tile.
struct TiledInput {
    data: Vec<f32>,
    /// Padded plane height and width.
    height: usize,
    width: usize,
    /// Tiles per column and per row of an output plane.
    tiles_h: usize,
    tiles_w: usize,
}

impl TiledInput {
    fn new(mem: &HostMemory, x: &[f32], g: &Conv2dGeometry) -> Self {
        let (tiles_h, tiles_w) = (g.out_h().div_ceil(2), g.out_w().div_ceil(2));
        let (height, width) = (2 * tiles_h + 2, 2 * tiles_w + 2);
        let mut data = mem.zeroed(g.batch * g.in_channels * height * width);
        data.par_chunks_mut(height * width).zip(x.par_chunks(g.in_h * g.in_w)).for_each(|(out, plane)| {
            for (y, row) in plane.chunks(g.in_w).enumerate() {
                let (py, px) = (y + g.padding.0, g.padding.1);
                if py < height {
                    let len = g.in_w.min(width - px);
                    out[py * width + px..py * width + px + len].copy_from_slice(&row[..len]);
                }
            }
        });
        TiledInput { data, height, width, tiles_h, tiles_w }
    }

    /// Tiles per image plane.
    fn per_image(&self) -> usize {
        self.tiles_h * self.tiles_w
    }
}

/// How the transformed input tiles of a group are stored: one matrix per position ξ,
/// each in the GEMM's packed-panel layout for the product it feeds, so the GEMM's
/// packing is a plain copy of whole rows.
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
    /// Floats from one position's matrix to the next: every panel, padded to whole
    /// panels, and skewed.
    fn matrix_len(self, channels: usize, tiles: usize) -> usize {
        match self {
            TileLayout::ChannelRows => channels * tiles.next_multiple_of(NR) + SKEW,
            TileLayout::TileRows => channels.next_multiple_of(NR) * tiles + SKEW,
        }
    }

    /// Index of channel `c`, tile `t` within one position's matrix of `tiles` tiles.
    fn index(self, [channels, tiles]: [usize; 2], c: usize, t: usize) -> usize {
        match self {
            TileLayout::ChannelRows => (t / NR) * channels * NR + c * NR + t % NR,
            TileLayout::TileRows => (c / NR) * tiles * NR + t * NR + c % NR,
        }
    }
}

/// One position's transformed tiles as a GEMM's right-hand side.
struct TransformedTiles<'a> {
    data: &'a [f32],
    layout: TileLayout,
    /// Channels and tiles of the matrix.
    size: [usize; 2],
}

impl PackB for TransformedTiles<'_> {
    fn pack(&self, first_row: usize, rows: usize, first_col: usize, cols: usize, panel: &mut [f32]) {
        debug_assert!(first_col.is_multiple_of(NR) && cols <= NR);
        let start = match self.layout {
            TileLayout::ChannelRows => self.layout.index(self.size, first_row, first_col),
            TileLayout::TileRows => self.layout.index(self.size, first_col, first_row),
        };
        panel[..rows * NR].copy_from_slice(&self.data[start..start + rows * NR]);
    }
}

/// Writes `V[ξ] = (Bᵀ·d·B)[ξ]` for every channel and tile of `images` into `v` (16
/// matrices in `layout`). Per channel and row of tiles, `Bᵀ·d` runs over whole input
/// rows at once, then `·B` over the tiles of the row.
fn transform_input(
    input: &TiledInput,
    images: std::ops::Range<usize>,
    c: usize,
    layout: TileLayout,
    v: &mut [f32],
) {
    let per_image = input.per_image();
    let tiles = images.len() * per_image;
    let matrix = layout.matrix_len(c, tiles);
    let (plane, width) = (input.height * input.width, input.width);
    let mut columns = vec![[0.0f32; 4]; width];
    for (j, image) in images.enumerate() {
        for channel in 0..c {
            let source = &input.data[(image * c + channel) * plane..][..plane];
            for ty in 0..input.tiles_h {
                let rows = &source[2 * ty * width..(2 * ty + 4) * width];
                let (d0, rest) = rows.split_at(width);
                let (d1, rest) = rest.split_at(width);
                let (d2, d3) = rest.split_at(width);
                // Bᵀ·d for every input column of this row of tiles.
                for (x, t) in columns.iter_mut().enumerate() {
                    *t = [d0[x] - d2[x], d1[x] + d2[x], d2[x] - d1[x], d1[x] - d3[x]];
                }
                for tx in 0..input.tiles_w {
                    let tile = j * per_image + ty * input.tiles_w + tx;
                    let at = layout.index([c, tiles], channel, tile);
                    let [t0, t1, t2, t3] =
                        [columns[2 * tx], columns[2 * tx + 1], columns[2 * tx + 2], columns[2 * tx + 3]];
                    for row in 0..4 {
                        let values =
                            [t0[row] - t2[row], t1[row] + t2[row], t2[row] - t1[row], t1[row] - t3[row]];
                        for (col, value) in values.into_iter().enumerate() {
                            v[(row * 4 + col) * matrix + at] = value;
                        }
                    }
                }
            }
        }
    }
}

/// Turns the 16 products `m` (`16 × O × tiles`) into the NCHW output of `images`
/// (`Aᵀ·m·A`, plus the bias, through `activation`), keeping the pixels inside the
/// plane.
fn transform_output(
    m: &[f32],
    bias: Option<&[f32]>,
    activation: Activation,
    g: &Conv2dGeometry,
    input: &TiledInput,
    count: usize,
    out: &mut [f32],
) {
    let o = g.out_channels;
    let (oh, ow) = (g.out_h(), g.out_w());
    let per_image = input.per_image();
    let tiles = count * per_image;
    for j in 0..count {
        for channel in 0..o {
            let plane = &mut out[(j * o + channel) * oh * ow..][..oh * ow];
            let b = bias.map_or(0.0, |b| b[channel]);
            for ty in 0..input.tiles_h {
                for tx in 0..input.tiles_w {
                    let tile = j * per_image + ty * input.tiles_w + tx;
                    let at = |xi: usize| m[xi * (o * tiles + SKEW) + channel * tiles + tile];
                    // Aᵀ·m: 2×4.
                    let column = |k: usize| [at(k), at(4 + k), at(8 + k), at(12 + k)];
                    let s: [[f32; 4]; 2] = [
                        std::array::from_fn(|k| column(k)[0] + column(k)[1] + column(k)[2]),
                        std::array::from_fn(|k| column(k)[1] - column(k)[2] - column(k)[3]),
                    ];
                    for (dy, s) in s.iter().enumerate() {
                        let y = 2 * ty + dy;
                        if y >= oh {
                            continue;
                        }
                        let values = [s[0] + s[1] + s[2], s[1] - s[2] - s[3]];
                        for (dx, value) in values.into_iter().enumerate() {
                            let x = 2 * tx + dx;
                            if x < ow {
                                plane[y * ow + x] = activation.apply(value + b);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Forward convolution `g` (for which [`applies`] holds) by Winograd F(2×2, 3×3).
pub fn forward(
    mem: &HostMemory,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    g: &Conv2dGeometry,
    activation: Activation,
) -> Vec<f32> {
    let (o, c) = (g.out_channels, g.in_channels);
    let u = transform_weights(w, o, c);
    let input = TiledInput::new(mem, x, g);
    let per_image = input.per_image();
    let group = images_per_group(g, per_image);
    let out_image = o * g.out_h() * g.out_w();
    let mut out = mem.take(g.batch * out_image);
    out.par_chunks_mut(group * out_image).zip(super::image_groups(g.batch, group)).for_each(
        |(out_group, images)| {
            let count = images.len();
            let tiles = count * per_image;
            let layout = TileLayout::ChannelRows;
            let matrix = layout.matrix_len(c, tiles);
            with_scratch(POSITIONS * (matrix + o * tiles + SKEW), |scratch| {
                let (v, m) = scratch.split_at_mut(POSITIONS * matrix);
                transform_input(&input, images, c, layout, v);
                for (xi, u) in u.iter().enumerate() {
                    let v = TransformedTiles { data: &v[xi * matrix..][..matrix], layout, size: [c, tiles] };
                    let product = &mut m[xi * (o * tiles + SKEW)..][..o * tiles];
                    gemm_packed(
                        o,
                        c,
                        tiles,
                        Left::Packed(u),
                        &v,
                        product,
                        OutputLayout::RowMajor { ldc: tiles },
                        false,
                    );
                }
                transform_output(m, bias, activation, g, &input, count, out_group);
            });
        },
    );
    mem.recycle(input.data);
    out
}

/// Images per group: about [`TARGET_TILES`] tiles, and at least one group per thread.
fn images_per_group(g: &Conv2dGeometry, per_image: usize) -> usize {
    let per_thread = g.batch.div_ceil(rayon::current_num_threads()).max(1);
    TARGET_TILES.div_ceil(per_image).clamp(1, per_thread)
}

/// Writes `dM[ξ] = (A·dY·Aᵀ)[ξ]` for every output channel and tile of the `count` images
/// of `dy` into `dm` (16 row-major `[O, tiles]` matrices, `stride` apart). Pixels past
/// the plane's edge had no output, so their gradient is zero.
fn transform_output_gradient(
    dy: &[f32],
    g: &Conv2dGeometry,
    input: &TiledInput,
    count: usize,
    stride: usize,
    dm: &mut [f32],
) {
    let o = g.out_channels;
    let (oh, ow) = (g.out_h(), g.out_w());
    let per_image = input.per_image();
    let tiles = count * per_image;
    for j in 0..count {
        for channel in 0..o {
            let plane = &dy[(j * o + channel) * oh * ow..][..oh * ow];
            let at = |y: usize, x: usize| if y < oh && x < ow { plane[y * ow + x] } else { 0.0 };
            for ty in 0..input.tiles_h {
                for tx in 0..input.tiles_w {
                    let (y, x) = (2 * ty, 2 * tx);
                    let (top, bottom) = ([at(y, x), at(y, x + 1)], [at(y + 1, x), at(y + 1, x + 1)]);
                    // A·dY: 4×2.
                    let rows = [
                        top,
                        [top[0] + bottom[0], top[1] + bottom[1]],
                        [top[0] - bottom[0], top[1] - bottom[1]],
                        [-bottom[0], -bottom[1]],
                    ];
                    let tile = j * per_image + ty * input.tiles_w + tx;
                    for (row, r) in rows.iter().enumerate() {
                        let values = [r[0], r[0] + r[1], r[0] - r[1], -r[1]];
                        for (col, value) in values.into_iter().enumerate() {
                            dm[(row * 4 + col) * stride + channel * tiles + tile] = value;
                        }
                    }
                }
            }
        }
    }
}

/// `dW = Gᵀ·dU·G` for every kernel, from the 16 matrices `dU[ξ]` (`[O, C]`, `stride`
/// apart).
fn weight_gradient_from(du: &[f32], o: usize, c: usize, stride: usize) -> Vec<f32> {
    let mut dw = vec![0.0f32; o * c * 9];
    for (oc, kernel) in dw.chunks_exact_mut(9).enumerate() {
        let at = |xi: usize| du[xi * stride + oc];
        // Gᵀ·dU: 3×4.
        let column = |col: usize| [at(col), at(4 + col), at(8 + col), at(12 + col)];
        let t: [[f32; 4]; 3] = [
            std::array::from_fn(|col| column(col)[0] + 0.5 * (column(col)[1] + column(col)[2])),
            std::array::from_fn(|col| 0.5 * (column(col)[1] - column(col)[2])),
            std::array::from_fn(|col| 0.5 * (column(col)[1] + column(col)[2]) + column(col)[3]),
        ];
        // (Gᵀ·dU)·G: 3×3.
        for (row, t) in t.iter().enumerate() {
            kernel[row * 3] = t[0] + 0.5 * (t[1] + t[2]);
            kernel[row * 3 + 1] = 0.5 * (t[1] - t[2]);
            kernel[row * 3 + 2] = 0.5 * (t[1] + t[2]) + t[3];
        }
    }
    dw
}

/// The weight gradient of convolution `g` (for which [`applies`] holds) by Winograd
/// F(2×2, 3×3): per group of images, `dU[ξ] += dM[ξ]·V[ξ]ᵀ` in 16 GEMMs, each task
/// summing a fixed share of the groups and the task sums added in order (so the result
/// does not depend on timing), then `dW = Gᵀ·dU·G`.
pub fn backward_weight(mem: &HostMemory, x: &[f32], dy: &[f32], g: &Conv2dGeometry) -> Vec<f32> {
    let (o, c) = (g.out_channels, g.in_channels);
    let input = TiledInput::new(mem, x, g);
    let per_image = input.per_image();
    let group = images_per_group(g, per_image);
    let groups = super::image_groups(g.batch, group);
    let per_task = groups.len().div_ceil(rayon::current_num_threads()).max(1);
    let out_image = o * g.out_h() * g.out_w();
    let du_stride = o * c + SKEW;
    let partials: Vec<Vec<f32>> = groups
        .par_chunks(per_task)
        .map(|share| {
            let mut du = mem.take(POSITIONS * du_stride);
            for (i, images) in share.iter().enumerate() {
                let tiles = images.len() * per_image;
                let layout = TileLayout::TileRows;
                let (matrix, dm_stride) = (layout.matrix_len(c, tiles), o * tiles + SKEW);
                with_scratch(POSITIONS * (matrix + dm_stride), |scratch| {
                    let (v, dm) = scratch.split_at_mut(POSITIONS * matrix);
                    transform_input(&input, images.clone(), c, layout, v);
                    let dy = &dy[images.start * out_image..images.end * out_image];
                    transform_output_gradient(dy, g, &input, images.len(), dm_stride, dm);
                    for xi in 0..POSITIONS {
                        let left = Strided {
                            data: &dm[xi * dm_stride..][..o * tiles],
                            offset: 0,
                            row_stride: tiles,
                            col_stride: 1,
                        };
                        let right =
                            TransformedTiles { data: &v[xi * matrix..][..matrix], layout, size: [c, tiles] };
                        let out = &mut du[xi * du_stride..][..o * c];
                        gemm_packed(
                            o,
                            tiles,
                            c,
                            Left::Strided(&left),
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
    mem.recycle(input.data);
    let du = super::sum_in_order(mem, partials, POSITIONS * du_stride);
    let dw = weight_gradient_from(&du, o, c, du_stride);
    mem.recycle(du);
    dw
}
