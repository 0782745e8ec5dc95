//! `GemmTile`: the shapes the tiled GEMM kernel (`gemm_tile.wgsl`, behind matmul and
//! the three convolution passes, the `GemmPass`es) is compiled in, the rewrite of its
//! source, its workgroup grid, and the fixed choice used when nothing is tuned.

/// The passes that run on the tiled GEMM, each with its own loads and store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GemmPass {
    Matmul,
    ConvForward,
    ConvInputGrad,
    ConvWeightGrad,
}

impl GemmPass {
    /// Every pass.
    pub const ALL: [GemmPass; 4] =
        [GemmPass::Matmul, GemmPass::ConvForward, GemmPass::ConvInputGrad, GemmPass::ConvWeightGrad];

    /// The pass's name in the autotuner's cache and listings.
    pub fn name(self) -> &'static str {
        match self {
            GemmPass::Matmul => "matmul",
            GemmPass::ConvForward => "conv_forward",
            GemmPass::ConvInputGrad => "conv_input_grad",
            GemmPass::ConvWeightGrad => "conv_weight_grad",
        }
    }
}

/// How a workgroup's 256 invocations are laid out over the tile of C.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lanes {
    /// 16 along n by 16 along m.
    Square,
    /// 4 along n by 64 along m: tiles for products with few columns.
    Tall,
}

impl Lanes {
    /// Invocations along n (x) and along m (y).
    pub fn xy(self) -> [u32; 2] {
        match self {
            Lanes::Square => [16, 16],
            Lanes::Tall => [4, 64],
        }
    }

    /// The name in the autotuner's cache and listings.
    pub fn name(self) -> &'static str {
        match self {
            Lanes::Square => "square",
            Lanes::Tall => "tall",
        }
    }
}

/// Outputs per invocation: `rows × cols`, so a workgroup of `x × y` invocations
/// ([`Lanes`]) computes a `y·rows × x·cols` tile of C; with `splits > 1` (split-K) K
/// is cut into that many slices summed by a second pass. Shapes without split-K sum each
/// output over K in the same order, so they give the same bits and differ only in
/// speed; split-K rounds differently (slice by slice), the same way on every run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GemmTile {
    /// The invocations' layout.
    pub lanes: Lanes,
    /// Output rows per invocation (1, 2, 4 or 8).
    pub rows: u32,
    /// Output columns per invocation (a multiple of 4, at most 8).
    pub cols: u32,
    /// Slices of K (1: no split-K).
    pub splits: u32,
    /// Operand tile buffers in workgroup memory: 2 loads the next K step while this
    /// one computes.
    pub buffers: u32,
}

/// Matrix products with at most this many rows use [`GemmTile::NARROW`] by default.
const NARROW_ROWS: usize = 32;

impl GemmTile {
    /// 64×64 tiles, 4×4 outputs per invocation: the fixed default.
    pub const DEFAULT: GemmTile = GemmTile { lanes: Lanes::Square, rows: 4, cols: 4, splits: 1, buffers: 1 };
    /// 16×64 tiles for products with few rows (a dense layer at a small batch).
    pub const NARROW: GemmTile = GemmTile { lanes: Lanes::Square, rows: 1, cols: 4, splits: 1, buffers: 1 };
    /// Every shape the autotuner tries: larger tiles for large products, split-K for
    /// long K and a small C (a convolution's weight gradient, K = batch × output
    /// pixels), tall tiles for few columns (a classifier's 10 outputs).
    pub const CANDIDATES: [GemmTile; 11] = [
        GemmTile::NARROW,
        GemmTile::DEFAULT,
        GemmTile { lanes: Lanes::Square, rows: 4, cols: 8, splits: 1, buffers: 1 },
        GemmTile { lanes: Lanes::Square, rows: 8, cols: 4, splits: 1, buffers: 1 },
        GemmTile { lanes: Lanes::Square, rows: 8, cols: 8, splits: 1, buffers: 1 },
        GemmTile { lanes: Lanes::Square, rows: 4, cols: 4, splits: 4, buffers: 1 },
        GemmTile { lanes: Lanes::Square, rows: 4, cols: 4, splits: 16, buffers: 1 },
        GemmTile { lanes: Lanes::Tall, rows: 1, cols: 4, splits: 1, buffers: 1 },
        GemmTile { lanes: Lanes::Tall, rows: 2, cols: 4, splits: 1, buffers: 1 },
        GemmTile { lanes: Lanes::Square, rows: 4, cols: 4, splits: 1, buffers: 2 },
        GemmTile { lanes: Lanes::Square, rows: 8, cols: 8, splits: 1, buffers: 2 },
    ];

    /// The fixed choice for a matrix product with `m` rows (convolutions take
    /// [`GemmTile::DEFAULT`]).
    pub fn default_for(m: usize) -> GemmTile {
        if m <= NARROW_ROWS { GemmTile::NARROW } else { GemmTile::DEFAULT }
    }

    fn tile_m(self) -> usize {
        (self.lanes.xy()[1] * self.rows) as usize
    }

    fn tile_n(self) -> usize {
        (self.lanes.xy()[0] * self.cols) as usize
    }

    /// Workgroup memory the shape stages: two 16-deep operand tiles of f32 per buffer.
    pub fn workgroup_bytes(self) -> u32 {
        (16 * (self.tile_m() + self.tile_n()) * 4) as u32 * self.buffers
    }

    /// The tile constants `gemm_tile.wgsl` is compiled with, as WGSL, put in front of
    /// it (split-K's `partial` is the family's last binding, `bindings.rs`).
    pub fn wgsl_constants(self) -> String {
        let [wg_x, wg_y] = self.lanes.xy();
        format!(
            "const WG_X: u32 = {wg_x}u;\nconst WG_Y: u32 = {wg_y}u;\nconst ROWS: u32 = {}u;\n\
             const COLS: u32 = {}u;\nconst SPLITS: u32 = {}u;\nconst BUFFERS: u32 = {}u;\n",
            self.rows, self.cols, self.splits, self.buffers
        )
    }

    /// Workgroups for an `m × n` product: column tiles along x (spilling into z), row
    /// tiles along y, K slices along z.
    pub fn grid(self, m: usize, n: usize) -> [u32; 3] {
        let column_tiles = n.div_ceil(self.tile_n()).max(1);
        let x = column_tiles.min(32_768);
        let spill = column_tiles.div_ceil(x) as u32;
        [x as u32, m.div_ceil(self.tile_m()).max(1) as u32, spill * self.splits]
    }
}
