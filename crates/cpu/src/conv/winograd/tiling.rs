//! How a group of images is cut into tiles: the tile grid, the padded planes, and the
//! layout of the transformed tiles in memory.

use super::*;

/// How the input is cut into `N×N` tiles: each image plane zero-padded so that every
/// tile lies inside (the convolution's padding before, and after enough to complete the
/// last tile). A group's images are padded into scratch just before their transform.
#[derive(Clone, Copy, Debug)]
pub(super) struct Tiling {
    /// Padded plane height and width.
    pub(super) height: usize,
    pub(super) width: usize,
    /// Tiles per column and per row of an output plane.
    pub(super) tiles_h: usize,
    pub(super) tiles_w: usize,
}

impl Tiling {
    /// The tiling of `g` for tiles of `n` pixels a side producing `m×m` output blocks.
    pub(super) fn new(g: &Conv2dGeometry, [n, m]: [usize; 2]) -> Self {
        let (tiles_h, tiles_w) = (g.out_h().div_ceil(m), g.out_w().div_ceil(m));
        Tiling { height: m * tiles_h + n - m, width: m * tiles_w + n - m, tiles_h, tiles_w }
    }

    /// Tiles per image plane.
    pub(super) fn per_image(&self) -> usize {
        self.tiles_h * self.tiles_w
    }

    /// Floats of one padded plane.
    pub(super) fn plane(&self) -> usize {
        self.height * self.width
    }

    /// Writes the padded planes of `x` (whole NCHW images of `g`) into `out`.
    pub(super) fn pad(&self, g: &Conv2dGeometry, x: &[f32], out: &mut [f32]) {
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
    pub(super) fn blocked_image(&self, channels: usize) -> usize {
        channels.div_ceil(LANES) * self.plane() * LANES
    }

    /// Writes the padded input of `x` (whole NCHW images of `g`) into `out`, channel
    /// blocked (`[image][block][y][x][lane]`, [`Tiling::blocked_image`] floats per
    /// image): the input transform then loads one pixel of [`LANES`] channels as one
    /// vector and transforms as many channels with each operation.
    pub(super) fn pad_blocked(&self, g: &Conv2dGeometry, x: &[f32], out: &mut [f32]) {
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
pub(super) enum TileLayout {
    /// `V[ξ]` as `[C, tiles]` (the forward pass's right-hand side): panels of 16
    /// tiles, one channel per row.
    ChannelRows,
    /// `V[ξ]ᵀ` as `[tiles, C]` (the weight gradient's right-hand side): panels of 16
    /// channels, one tile per row.
    TileRows,
}

impl TileLayout {
    /// Floats the matrices of all `positions` take, padded to whole panels.
    pub(super) fn len(self, positions: usize, [channels, tiles]: [usize; 2]) -> usize {
        positions
            * match self {
                TileLayout::ChannelRows => channels * tiles.next_multiple_of(NR),
                TileLayout::TileRows => channels.next_multiple_of(NR) * tiles,
            }
    }

    /// Index of position `xi`'s value for channel `c`, tile `t`; the next position's
    /// value is [`NR`] floats further.
    pub(super) fn index(
        self,
        positions: usize,
        [channels, tiles]: [usize; 2],
        xi: usize,
        c: usize,
        t: usize,
    ) -> usize {
        let (row, lane) = match self {
            TileLayout::ChannelRows => ((t / NR) * channels + c, t % NR),
            TileLayout::TileRows => ((c / NR) * tiles + t, c % NR),
        };
        (row * positions + xi) * NR + lane
    }
}
