//! The input transform: `V = Bᵀ·d·B` for every tile, and the transformed tiles as a
//! GEMM's right-hand side.

use super::*;

/// One position's transformed tiles as a GEMM's right-hand side.
pub(super) struct TransformedTiles<'a> {
    pub(super) data: &'a [f32],
    pub(super) layout: TileLayout,
    /// Positions stored side by side.
    pub(super) positions: usize,
    /// The position this matrix is.
    pub(super) xi: usize,
    /// Channels and tiles of the matrix.
    pub(super) size: [usize; 2],
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
pub(super) fn transform_input_by_channel<
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
pub(super) fn transform_input_by_channel_block<
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
