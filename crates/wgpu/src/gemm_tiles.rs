//! `GemmTile`: the shapes the tiled GEMM kernel (`gemm_tile.wgsl`, behind matmul and
//! the three convolution passes) is compiled in, the rewrite of its source, its
//! workgroup grid, and the fixed choice used when nothing is tuned.

/// Outputs per invocation of the 16×16 workgroup: `rows × cols`, so a workgroup
/// computes a `16·rows × 16·cols` tile of C. Every shape sums each output over K in
/// the same order, so all give the same bits and differ only in speed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GemmTile {
    /// Output rows per invocation (1, 2, 4 or 8).
    pub rows: u32,
    /// Output columns per invocation (a multiple of 4, at most 8).
    pub cols: u32,
}

/// Matrix products with at most this many rows use [`GemmTile::NARROW`] by default.
const NARROW_ROWS: usize = 32;

impl GemmTile {
    /// 64×64 tiles, 4×4 outputs per invocation: the fixed default.
    pub const DEFAULT: GemmTile = GemmTile { rows: 4, cols: 4 };
    /// 16×64 tiles for products with few rows (a dense layer at a small batch).
    pub const NARROW: GemmTile = GemmTile { rows: 1, cols: 4 };
    /// Every shape the autotuner tries.
    pub const CANDIDATES: [GemmTile; 5] = [
        GemmTile::NARROW,
        GemmTile::DEFAULT,
        GemmTile { rows: 4, cols: 8 },
        GemmTile { rows: 8, cols: 4 },
        GemmTile { rows: 8, cols: 8 },
    ];

    /// The fixed choice for a matrix product with `m` rows (convolutions take
    /// [`GemmTile::DEFAULT`]).
    pub fn default_for(m: usize) -> GemmTile {
        if m <= NARROW_ROWS { GemmTile::NARROW } else { GemmTile::DEFAULT }
    }

    fn tile_m(self) -> usize {
        16 * self.rows as usize
    }

    fn tile_n(self) -> usize {
        16 * self.cols as usize
    }

    /// Workgroup memory the shape stages: two 16-deep operand tiles of f32.
    pub fn workgroup_bytes(self) -> u32 {
        (16 * (self.tile_m() + self.tile_n()) * 4) as u32
    }

    /// The tiled GEMM's source compiled for this shape.
    pub fn source(self, template: &str) -> String {
        const ROWS: &str = "const ROWS: u32 = 4u;";
        const COLS: &str = "const COLS: u32 = 4u;";
        assert!(template.contains(ROWS) && template.contains(COLS), "gemm_tile.wgsl's tile constants moved");
        template
            .replace(ROWS, &format!("const ROWS: u32 = {}u;", self.rows))
            .replace(COLS, &format!("const COLS: u32 = {}u;", self.cols))
    }

    /// Workgroups for an `m × n` product: column tiles along x (spilling into z), row
    /// tiles along y.
    pub fn grid(self, m: usize, n: usize) -> [u32; 3] {
        let column_tiles = n.div_ceil(self.tile_n()).max(1);
        let x = column_tiles.min(32_768);
        [x as u32, m.div_ceil(self.tile_m()).max(1) as u32, column_tiles.div_ceil(x) as u32]
    }
}
