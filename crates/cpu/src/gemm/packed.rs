//! The cache-blocked GEMM loop, in the BLIS order: a `KC×NC` block of `B` is packed
//! into `NR`-column panels (kept in L3; or written as rows the AVX-512 kernels read in
//! place, by a source that writes rows faster, see [`PackB::pack_rows`]), each `MC×KC` block of `A` into `MR`-row panels
//! (kept in L2), and the micro-kernel walks them with one `B` panel resident in L1.
//! Packing pads ragged edges with zeros, so the kernel always computes full tiles;
//! ragged tiles of `C` go through a small buffer.

use std::cell::RefCell;

use super::{GemmKernel, Left, MR, NR, PackB, PackedPanel, Strided};

/// The usual depth of one packed block (the `k` slice one kernel call runs over). A
/// deeper block stores each tile of `C` fewer times and packs `B` in fewer, longer
/// calls, while the 12×32 kernel still streams its two `B` panels from L2 fast
/// enough: 512 instead of 256 took the 3×3 stride-2 forward of 128 images of 64
/// channels at 28×28 from 20.9 to 20.55 ms (its 576-deep product in one block instead
/// of two), 6400×512×128 from 3.88 to 3.73 ms, and left the other GEMMs and the
/// models within their noise (AVX-512, Zen 4; not measured with the AVX2 kernel).
const KC: usize = 512;
/// The most depth of one packed block: [`KC`] plus an eighth, room to spread a small
/// remainder over the whole blocks.
const MAX_KC: usize = KC + KC / 8;

/// The depth of the packed blocks of a product of depth `k`: [`KC`], unless `k`
/// leaves a remainder of at most an eighth of a block per whole block, which is then
/// spread over them (rounded up to 8) instead of becoming a shallow last block that
/// loads and stores every tile of `C` for a few steps (the 3×3 convolutions' 576 =
/// 9·64 in one block; with 256-deep blocks, 2 × 288 rather than 256 + 256 + 64 took
/// the stride-2 forward above from 21.45 to 21.01 ms). Equal blocks well below the
/// usual depth measured slower: 288 as 2 × 144 took 20% longer than 256 + 32 in the
/// Winograd weight gradient.
pub fn depth_block(k: usize) -> usize {
    let whole = (k / KC).max(1);
    let remainder = k.saturating_sub(whole * KC);
    if remainder <= whole * (MAX_KC - KC) { k.div_ceil(whole).next_multiple_of(8).min(MAX_KC) } else { KC }
}
/// Rows of `A` packed at once (a multiple of [`MR`]).
const MC: usize = 96;
/// Columns of `B` packed at once (a multiple of [`NR`]).
const NC: usize = 2048;
/// Alignment of the packed panels, in floats (64 bytes: one cache line).
const ALIGN: usize = 16;

thread_local! {
    static PACKED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// A micro-kernel: `C[MR×NR] = A panel · B panel` over `k` steps, added to what `C`
/// holds when the flag is set. `C` has the given row stride.
///
/// # Safety
/// The panels must hold `k·MR` and `k·NR` values and `C` an `MR×NR` block; the CPU must
/// support the kernel's instructions.
pub type MicroKernel = unsafe fn(usize, *const f32, *const f32, *mut f32, usize, bool);

/// Where a wide, tail or rows kernel writes its block of `C`: `cols` (at most `2NR`)
/// columns of each row from `ptr`, rows `row_stride` apart, added to what is there when
/// `accumulate`, and `bias[j]` added to column `j` of every row when `bias` is not
/// null. The columns past `cols` are neither read nor written.
#[derive(Clone, Copy)]
pub struct TileOut {
    /// Element `(0, 0)` of the block.
    pub ptr: *mut f32,
    /// Distance between rows.
    pub row_stride: usize,
    /// Columns to store.
    pub cols: usize,
    /// Add to the block instead of overwriting it.
    pub accumulate: bool,
    /// `cols` values added to every row (after the block's old values), or null.
    pub bias: *const f32,
}

/// One or two `B` panels of 16 columns as a wide, tail, narrow or rows kernel reads
/// them: panel `p`'s sixteen values at step `s` start at `first + p·next + s·step`
/// (packed panels: `next = NR·kc`, `step = NR`; a row-major block read in place: `next
/// = NR`, `step` its row stride).
#[derive(Clone, Copy, Debug)]
pub struct RightPanels {
    /// The first panel's values at step 0.
    pub first: *const f32,
    /// Distance from the first panel to the second.
    pub next: usize,
    /// Distance between consecutive steps.
    pub step: usize,
}

/// A wide micro-kernel: the `2MR×2NR` block of `C` from two consecutive `A` panels
/// (the second `a_next` floats after the first) and two `B` panels: `(k, a, a_next, b,
/// out)`.
///
/// # Safety
/// As for [`MicroKernel`], for all four panels and the `2MR×cols` block `out`.
pub type WideKernel = unsafe fn(usize, *const f32, usize, RightPanels, TileOut);

/// A tail kernel: the block of `C` with as many rows as it was made for (fewer than
/// `2MR`) and `2NR` columns, from the packed `A` panels holding those rows (the second
/// `a_next` floats after the first, read only for rows past `MR`) and two `B` panels:
/// `(k, a, a_next, b, out)`.
///
/// # Safety
/// As for [`MicroKernel`], for the panels and the block.
pub type TailKernel = WideKernel;

/// A narrow kernel: the block of `C` with as many rows as it was made for (up to
/// `2MR`) and up to `NR` columns, from the packed `A` panels holding those rows (the
/// second `a_next` floats after the first, read only for rows past `MR`) and one `B`
/// panel (its `next` unused): `(k, a, a_next, b, out)`.
///
/// # Safety
/// As for [`MicroKernel`], for the panels and the block.
pub type NarrowKernel = WideKernel;

/// A rows kernel: the block of `C` with as many rows as it was made for (up to `2MR`)
/// and `2NR` columns, from those rows of a row-major `A` read in place (rows a stride
/// apart that the kernel was made for) and two `B` panels: `(k, a, b, out)`.
///
/// # Safety
/// As for [`MicroKernel`], for the rows of `k` values, both panels and the `rows×cols`
/// block `out`.
pub type RowsKernel = unsafe fn(usize, *const f32, RightPanels, TileOut);

/// The columns a rows kernel covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowsWidth {
    /// Two `B` panels: `2NR` columns.
    TwoPanels,
    /// One `B` panel and the first half of the next: `NR + NR/2` columns, for a last
    /// pair of panels whose second holds at most `NR/2` of the block's columns.
    PanelAndHalf,
}

/// How a block of `B` lies in the packing buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BlockLayout {
    /// `NR`-column panels one after another, each `kc` steps of `NR` floats.
    Panels,
    /// Row-major, step `s`'s columns from `s·stride` (see [`PackB::pack_rows`]).
    Rows { stride: usize },
}

/// A `kc`-deep block of `B` as [`gemm`] packed it.
#[derive(Clone, Copy)]
struct PackedBlock<'a> {
    data: &'a [f32],
    layout: BlockLayout,
    kc: usize,
}

impl PackedBlock<'_> {
    /// `panels` (1 or 2) panels from column `jr`, whose values lie inside the block's
    /// buffer (checked).
    fn panels(&self, jr: usize, panels: usize) -> RightPanels {
        let kc = self.kc;
        match self.layout {
            BlockLayout::Panels => {
                let data = &self.data[jr * kc..(jr + panels * NR) * kc];
                RightPanels { first: data.as_ptr(), next: NR * kc, step: NR }
            }
            BlockLayout::Rows { stride } => {
                let data = &self.data[jr..(kc - 1) * stride + jr + panels * NR];
                RightPanels { first: data.as_ptr(), next: NR, step: stride }
            }
        }
    }

    /// The packed panel at column `jr`, for the `MR×NR` kernels (which read packed
    /// panels only: [`gemm`] packs rows only for kernels that read them).
    fn packed_panel(&self, jr: usize) -> &[f32] {
        assert!(self.layout == BlockLayout::Panels, "an MR×NR tile of B packed as rows");
        &self.data[jr * self.kc..(jr + NR) * self.kc]
    }
}

/// The kernels one GEMM runs: the `MR×NR` tile kernel, and a wide one that covers
/// two by two panels at once wherever a whole `2MR×2NR` tile fits, with tail kernels
/// for the rows below the last whole wide tile.
#[derive(Clone, Copy)]
pub struct Kernels {
    /// One `MR×NR` tile.
    pub tile: MicroKernel,
    /// Two by two panels, when the CPU has such a kernel.
    pub wide: Option<WideKernel>,
    /// The rows below the last whole wide tile by two `B` panels, for each count of
    /// rows the CPU has such a kernel for (used with `wide`).
    pub tail: fn(usize) -> Option<TailKernel>,
    /// Tiles of a row-major `A` in place by two `B` panels or by one and a half, for
    /// the row strides, counts of rows and widths (`(stride, rows, width)`) the CPU has
    /// such a kernel for (used with `wide` and `tail`).
    pub rows: fn(usize, usize, RowsWidth) -> Option<RowsKernel>,
    /// Up to `2MR` rows by a lone last `B` panel, for each count of rows the CPU has
    /// such a kernel for (used with `wide`; else `tile` covers that panel).
    pub narrow: fn(usize) -> Option<NarrowKernel>,
}

impl Kernels {
    /// Whether every tile of `C` goes to the wide, tail, narrow and rows kernels (a
    /// wide kernel, a tail one for every count of rows below `2MR` and a narrow one for
    /// every count up to it), which also read `B` as row-major rows in place: a source
    /// that writes its rows faster than its panels ([`PackB::pack_rows`]) then skips
    /// the panels. Never the `MR×NR` tile kernel, which reads panels only.
    fn read_rows_of_b(&self) -> bool {
        self.wide.is_some()
            && (1..2 * MR).all(|rows| (self.tail)(rows).is_some())
            && (1..=2 * MR).all(|rows| (self.narrow)(rows).is_some())
    }
}

/// An `mc×kc` block of `A` as the micro-kernels read it.
#[derive(Clone, Copy)]
enum LeftBlock<'a> {
    /// All rows packed into `MR`-row panels.
    Packed(&'a [f32]),
    /// The rows of `tiles` read in place from a row-major matrix: row `r` at
    /// `data[offset + r·lda..]`; the rows below them packed into `rest`.
    Rows { tiles: RowTiles, data: &'a [f32], offset: usize, lda: usize, rest: &'a [f32] },
}

/// How the rows of a block of a row-major `A` read in place split into tiles: as few
/// tiles as `2MR` rows a tile allow, their heights differing by at most one (the
/// `taller` first tiles one row taller), when the CPU has rows kernels for those
/// heights; else whole `2MR`-row tiles, the rows below them left to the packed tail
/// kernels. Even tiles leave no tail: a batched product of 50×32 by 32×50 (attention
/// scores) ran 5 tiles of 10 rows instead of 4 of 12 and a packed tail of 2, 1.48–1.65
/// → 1.29–1.39 ms (512 products, one thread, Zen 4).
#[derive(Clone, Copy)]
pub struct RowTiles {
    /// Tiles read in place.
    count: usize,
    /// Rows of the shorter tiles.
    height: usize,
    /// How many tiles, the first ones, have `height + 1` rows.
    taller: usize,
    /// The rows kernels for `height` and for `height + 1` rows, two panels wide.
    kernels: [RowsKernel; 2],
    /// The same, a panel and a half wide, where the CPU has them.
    and_half: Option<[RowsKernel; 2]>,
}

impl RowTiles {
    /// The tiles of a block of `rows` rows `lda` apart, or `None` when the CPU has no
    /// rows kernel for that stride.
    pub fn new(
        rows_kernel: fn(usize, usize, RowsWidth) -> Option<RowsKernel>,
        lda: usize,
        rows: usize,
    ) -> Option<Self> {
        let both = |height: usize, taller: usize| -> [Option<[RowsKernel; 2]>; 2] {
            [RowsWidth::TwoPanels, RowsWidth::PanelAndHalf].map(|width| {
                let kernel = |rows| rows_kernel(lda, rows, width);
                kernel(height)
                    .zip(kernel(height + usize::from(taller > 0)))
                    .map(|(short, tall)| [short, tall])
            })
        };
        let count = rows.div_ceil(2 * MR);
        let (height, taller) = (rows / count.max(1), rows % count.max(1));
        Some(match both(height, taller) {
            [Some(kernels), and_half] if count > 0 => RowTiles { count, height, taller, kernels, and_half },
            _ => {
                let [kernels, and_half] = both(2 * MR, 0);
                RowTiles { count: rows / (2 * MR), height: 2 * MR, taller: 0, kernels: kernels?, and_half }
            }
        })
    }

    /// The rows the tiles cover, from row 0.
    pub fn rows(&self) -> usize {
        self.count * self.height + self.taller
    }

    /// Each tile's first row, rows and kernel of `width` (two panels where the CPU
    /// has no kernel a panel and a half wide), in order.
    pub fn each(self, width: RowsWidth) -> impl Iterator<Item = (usize, usize, RowsKernel)> {
        let kernels = match (width, self.and_half) {
            (RowsWidth::PanelAndHalf, Some(and_half)) => and_half,
            _ => self.kernels,
        };
        (0..self.count).map(move |t| {
            let tall = t < self.taller;
            let first = t * self.height + t.min(self.taller);
            (first, self.height + usize::from(tall), kernels[usize::from(tall)])
        })
    }
}

/// How the columns of an output matrix lie in memory.
#[derive(Clone, Copy, Debug)]
pub enum Columns {
    /// Column `j` of a row is element `j` of that row.
    Contiguous,
    /// Columns are the pixels of consecutive images (a convolution's output in NCHW):
    /// column `first + j` is pixel `(first + j) % plane` of image `(first + j) / plane`,
    /// images lying `image_stride` elements apart and a row being one channel's plane.
    Planes {
        /// The global column number of the block's column 0.
        first: usize,
        /// Pixels per image plane.
        plane: usize,
        /// Distance between images.
        image_stride: usize,
    },
}

/// The bias of column `col` given column 0's, or null for no bias.
fn bias_from(column_bias: *const f32, col: usize) -> *const f32 {
    if column_bias.is_null() { column_bias } else { column_bias.wrapping_add(col) }
}

/// A block of an output matrix: where element `(0, 0)` is, how rows and columns lie.
#[derive(Clone, Copy)]
pub struct OutputBlock {
    /// Element `(0, 0)` of the block (for [`Columns::Planes`], of its first image's
    /// plane, before the `first` column offset).
    pub ptr: *mut f32,
    /// Distance between rows.
    pub row_stride: usize,
    /// Where the columns are.
    pub columns: Columns,
    /// Add the product to what the block holds instead of overwriting it.
    pub accumulate: bool,
    /// For contiguous columns only: the bias of the block's column 0, each column's
    /// added to every row as the GEMM stores its last depth block; null for none.
    pub column_bias: *const f32,
}

impl OutputBlock {
    /// The block whose element `(0, 0)` is this block's `(row, col)`.
    ///
    /// # Safety
    /// `(row, col)` must lie inside the block.
    pub unsafe fn sub_block(self, row: usize, col: usize) -> OutputBlock {
        // SAFETY: inside the caller's block.
        let ptr = unsafe { self.ptr.add(row * self.row_stride) };
        match self.columns {
            Columns::Contiguous => OutputBlock {
                // SAFETY: as above.
                ptr: unsafe { ptr.add(col) },
                column_bias: bias_from(self.column_bias, col),
                ..self
            },
            Columns::Planes { first, plane, image_stride } => OutputBlock {
                ptr,
                columns: Columns::Planes { first: first + col, plane, image_stride },
                ..self
            },
        }
    }

    /// The address of element `(row, col)` and how many columns from `col` on follow it
    /// contiguously in memory (`usize::MAX` for contiguous rows).
    ///
    /// # Safety
    /// `(row, col)` must lie inside the block.
    unsafe fn run(self, row: usize, col: usize) -> (*mut f32, usize) {
        let row_start = row * self.row_stride;
        match self.columns {
            // SAFETY: inside the caller's block.
            Columns::Contiguous => (unsafe { self.ptr.add(row_start + col) }, usize::MAX),
            Columns::Planes { first, plane, image_stride } => {
                let (image, pixel) = ((first + col) / plane, (first + col) % plane);
                // SAFETY: inside the caller's block.
                (unsafe { self.ptr.add(image * image_stride + row_start + pixel) }, plane - pixel)
            }
        }
    }

    /// Writes (or adds, when `accumulate`) the `rows×cols` values of `tile` (row stride
    /// `tile_stride`) at `(row, col)`, following the column layout, then adds the
    /// column bias when the block has one.
    ///
    /// # Safety
    /// The `rows×cols` region at `(row, col)` must lie inside the block.
    unsafe fn store(
        self,
        [row, col]: [usize; 2],
        [rows, cols]: [usize; 2],
        tile: &[f32],
        tile_stride: usize,
        accumulate: bool,
    ) {
        for r in 0..rows {
            let mut done = 0;
            while done < cols {
                // SAFETY: inside the caller's region.
                let (ptr, contiguous) = unsafe { self.run(row + r, col + done) };
                let len = contiguous.min(cols - done);
                // SAFETY: `len` contiguous elements of the caller's region.
                let out = unsafe { std::slice::from_raw_parts_mut(ptr, len) };
                let values = &tile[r * tile_stride + done..r * tile_stride + done + len];
                if accumulate {
                    out.iter_mut().zip(values).for_each(|(o, v)| *o += v);
                } else {
                    out.copy_from_slice(values);
                }
                if !self.column_bias.is_null() {
                    // SAFETY: the bias holds one value per column of the block.
                    let bias = unsafe { std::slice::from_raw_parts(self.column_bias.add(col + done), len) };
                    out.iter_mut().zip(bias).for_each(|(o, b)| *o += b);
                }
                done += len;
            }
        }
    }
}

/// What runs on each row of `C` once it is complete, while it is still in cache: a
/// dense layer's bias, activation and dropout. Called with the row, the first column
/// and that row's values (of the block's contiguous columns).
pub type RowEpilogue<'a> = &'a (dyn Fn(usize, usize, &mut [f32]) + Sync);

/// Overwrites the `m×n` block `c` with `A·B` (`A` is `m×k`, `B` is `k×n`), or adds it
/// when `c.accumulate`, plus `c.column_bias` when it has one; then runs `epilogue`,
/// when given, on each finished row piece (row and column indices relative to `c`;
/// contiguous columns only).
///
/// The caller guarantees that `c` covers `m×n` elements nobody else touches meanwhile,
/// and that the CPU runs `kernel`.
pub fn gemm(
    kernel: GemmKernel,
    [m, k, n]: [usize; 3],
    a: Left,
    b: &impl PackB,
    c: OutputBlock,
    epilogue: Option<RowEpilogue>,
) {
    assert!(
        (epilogue.is_none() && c.column_bias.is_null()) || matches!(c.columns, Columns::Contiguous),
        "a row epilogue or column bias needs contiguous rows"
    );
    let kernels = kernel.kernels();
    if k == 0 {
        if !c.accumulate || !c.column_bias.is_null() {
            // SAFETY: the caller's m×n block.
            unsafe { c.store([0, 0], [m, n], &vec![0.0; n], 0, c.accumulate) };
        }
        return;
    }
    let rows_of_b = kernels.read_rows_of_b();
    // A row-major A is read in place where rows kernels exist for its stride.
    let in_place = |a: &Strided, rows: usize| {
        (a.col_stride == 1 && kernels.wide.is_some())
            .then(|| RowTiles::new(kernels.rows, a.row_stride, rows))?
    };
    PACKED.with(|cell| {
        let mut buffer = cell.borrow_mut();
        let (a_pack, b_pack) = packing_buffers(&mut buffer);
        for jc in (0..n).step_by(NC) {
            let nc = NC.min(n - jc);
            let block = depth_block(k);
            for pc in (0..k).step_by(block) {
                let kc = block.min(k - pc);
                // Row-major with a panel's width of slack for the source's spill.
                let stride = nc.next_multiple_of(NR) + NR;
                let layout = if rows_of_b && b.pack_rows(pc, kc, jc, nc, stride, b_pack) {
                    BlockLayout::Rows { stride }
                } else {
                    pack_b(b, pc, jc, kc, nc, b_pack);
                    BlockLayout::Panels
                };
                let b_block = PackedBlock { data: b_pack, layout, kc };
                for ic in (0..m).step_by(MC) {
                    let mc = MC.min(m - ic);
                    let a_block = match a {
                        Left::Strided(a) if let Some(tiles) = in_place(a, mc) => {
                            let whole = tiles.rows();
                            pack_a(a, ic + whole, pc, mc - whole, kc, a_pack);
                            LeftBlock::Rows {
                                tiles,
                                data: a.data,
                                offset: a.offset + ic * a.row_stride + pc,
                                lda: a.row_stride,
                                rest: &*a_pack,
                            }
                        }
                        Left::Strided(a) => {
                            pack_a(a, ic, pc, mc, kc, a_pack);
                            LeftBlock::Packed(&*a_pack)
                        }
                        Left::Packed(a) => {
                            LeftBlock::Packed(&a.data[pc * m.next_multiple_of(MR) + ic * kc..])
                        }
                    };
                    // SAFETY: the sub-block lies inside the caller's block.
                    let block = unsafe { c.sub_block(ic, jc) };
                    // The bias goes in with the last depth block's sums.
                    let last = pc + kc == k;
                    let block = OutputBlock {
                        column_bias: if last { block.column_bias } else { std::ptr::null() },
                        ..block
                    };
                    macro_kernel(kernels, [mc, kc, nc], a_block, b_block, block, pc > 0 || c.accumulate);
                    if let Some(epilogue) = epilogue.filter(|_| last) {
                        for r in 0..mc {
                            // SAFETY: row `ic + r`'s `nc` contiguous columns from `jc` lie
                            // inside the caller's block, finished by the call above.
                            let row = unsafe {
                                let (ptr, _) = c.run(ic + r, jc);
                                std::slice::from_raw_parts_mut(ptr, nc)
                            };
                            epilogue(ic + r, jc, row);
                        }
                    }
                }
            }
        }
    });
}

/// Splits the thread's packing buffer into 64-byte-aligned `A` and `B` areas.
fn packing_buffers(buffer: &mut Vec<f32>) -> (&mut [f32], &mut [f32]) {
    let len = MC * MAX_KC + MAX_KC * (NC + NR) + ALIGN;
    if buffer.len() < len {
        buffer.resize(len, 0.0);
    }
    let skip = buffer.as_ptr().align_offset(ALIGN * size_of::<f32>()).min(ALIGN);
    buffer[skip..].split_at_mut(MC * MAX_KC)
}

/// Runs the micro-kernels over an `mc×kc` block of `A` and a packed `kc×nc` block of
/// `B`, writing (or, when `accumulate`, adding) the `mc×nc` result into `c`: the wide
/// kernel on every whole `2MR×2NR` tile (for rows read in place, the rows kernels on
/// their [`RowTiles`]), the tail and tile kernels on the rest.
fn macro_kernel(
    kernels: Kernels,
    [mc, kc, nc]: [usize; 3],
    a_block: LeftBlock,
    b_block: PackedBlock,
    c: OutputBlock,
    accumulate: bool,
) {
    // Rows `first..` of the block come from the packed panels `a_pack`.
    let (first, a_pack) = match a_block {
        LeftBlock::Packed(a_pack) => (0, a_pack),
        LeftBlock::Rows { tiles, rest, .. } => (tiles.rows(), rest),
    };
    // SAFETY: `first <= mc` rows lie inside the caller's block.
    let packed_c = unsafe { c.sub_block(first, 0) };
    let packed_dims = [mc - first, kc, nc];
    let tile = |ir: usize, jr: usize| {
        narrow_tile(kernels.tile, [ir, jr], packed_dims, a_pack, b_block, packed_c, accumulate)
    };
    let mut jr = 0;
    while jr < nc {
        let cols = (2 * NR).min(nc - jr);
        // Two B panels from `jr` exist when more than NR columns are left; the second
        // may be ragged (zero-padded by the packing).
        let wide = kernels.wide.filter(|_| nc - jr > NR);
        if let LeftBlock::Rows { tiles, data, offset, lda, .. } = a_block {
            // With one B panel left, it stands in for both and half the tile is dropped.
            let b = if nc - jr > NR {
                b_block.panels(jr, 2)
            } else {
                RightPanels { next: 0, ..b_block.panels(jr, 1) }
            };
            // A last pair whose second panel holds at most half a panel of columns.
            let width = if (NR + 1..=NR + NR / 2).contains(&(nc - jr)) {
                RowsWidth::PanelAndHalf
            } else {
                RowsWidth::TwoPanels
            };
            for (ir, rows, kernel) in tiles.each(width) {
                let a = &data[offset + ir * lda..][..(rows - 1) * lda + kc];
                // SAFETY: the tile's rows of `kc` values from `a` (sliced above), the B
                // panels from `jr` hold kc steps each, and the tile's `cols` columns lie
                // inside the caller's block (see `store_wide`); the kernel, made for
                // those rows, matches the CPU (see `gemm`).
                unsafe {
                    store_wide(c, [ir, jr], [rows, cols], accumulate, |out| kernel(kc, a.as_ptr(), b, out));
                }
            }
        }
        let Some(wide) = wide else {
            let packed_rows = mc - first;
            for ir in (0..packed_rows).step_by(2 * MR) {
                match (kernels.narrow)((2 * MR).min(packed_rows - ir)) {
                    Some(narrow) => packed_rows_tile(
                        PackedRowsKernel::Narrow(narrow),
                        [ir, jr],
                        packed_dims,
                        a_pack,
                        b_block,
                        packed_c,
                        accumulate,
                    ),
                    None => (ir..packed_rows.min(ir + 2 * MR)).step_by(MR).for_each(|rest| tile(rest, jr)),
                }
            }
            jr += NR;
            continue;
        };
        let b = b_block.panels(jr, 2);
        let mut ir = 0;
        while mc - first - ir >= 2 * MR {
            // SAFETY: two whole A panels from `ir` and two B panels from `jr` (checked
            // above), each `kc` steps; the 2MR×cols tile lies inside the caller's block
            // (see `store_wide`), and the kernel matches the CPU (see `gemm`).
            unsafe {
                let a = a_pack[ir * kc..(ir + 2 * MR) * kc].as_ptr();
                store_wide(c, [ir, jr], [2 * MR, cols], accumulate, |out| wide(kc, a, MR * kc, b, out));
            }
            ir += 2 * MR;
        }
        match (kernels.tail)(mc - first - ir) {
            Some(tail) => {
                let kernel = PackedRowsKernel::Tail(tail);
                packed_rows_tile(kernel, [ir, jr], packed_dims, a_pack, b_block, packed_c, accumulate)
            }
            None => (ir..mc - first).step_by(MR).for_each(|rest| {
                tile(rest, jr);
                tile(rest, jr + NR);
            }),
        }
        jr += 2 * NR;
    }
}

/// A kernel for up to `2MR` rows of the packed `A` panels, as many as it was made for.
#[derive(Clone, Copy)]
enum PackedRowsKernel {
    /// The rows below the last whole wide tile by two B panels.
    Tail(TailKernel),
    /// Up to `2MR` rows by the lone last B panel.
    Narrow(NarrowKernel),
}

/// Up to `2MR` rows from `ir` (as many as `kernel` was made for: a tail kernel's run to
/// the end of the block) by the B panels at `jr` the kernel reads (two, or the lone
/// last one; see [`macro_kernel`]), stored by [`store_wide`].
fn packed_rows_tile(
    kernel: PackedRowsKernel,
    [ir, jr]: [usize; 2],
    [mc, kc, nc]: [usize; 3],
    a_pack: &[f32],
    b_block: PackedBlock,
    c: OutputBlock,
    accumulate: bool,
) {
    let (run, panels) = match kernel {
        PackedRowsKernel::Tail(tail) => (tail, 2),
        PackedRowsKernel::Narrow(narrow) => (narrow, 1),
    };
    let (rows, cols) = ((2 * MR).min(mc - ir), (panels * NR).min(nc - jr));
    let a_panels = &a_pack[ir * kc..(ir + rows.next_multiple_of(MR)) * kc];
    let a_next = if rows > MR { MR * kc } else { 0 };
    let b = b_block.panels(jr, panels);
    // SAFETY: the A panels holding the rows and the B panels hold kc steps each
    // (sliced above and by `panels`); the tile lies inside the caller's block. The
    // kernel matches the CPU (see `gemm`).
    unsafe {
        store_wide(c, [ir, jr], [rows, cols], accumulate, |out| run(kc, a_panels.as_ptr(), a_next, b, out));
    }
}

/// Runs a kernel that computes a `rows×2NR` tile (`rows` at most `2MR`) for the block's
/// `rows×cols` region at `(ir, jr)`: straight into `c` where the `cols` columns are
/// contiguous there (the kernel masks the ragged ones), else into a buffer whose valid
/// part is then copied out (a tile that straddles image planes).
///
/// # Safety
/// The region must lie inside the caller's block; `kernel` must write a `rows×cols`
/// block as its [`TileOut`] says.
unsafe fn store_wide(
    c: OutputBlock,
    [ir, jr]: [usize; 2],
    [rows, cols]: [usize; 2],
    accumulate: bool,
    kernel: impl FnOnce(TileOut),
) {
    // SAFETY: inside the caller's block.
    let (ptr, contiguous) = unsafe { c.run(ir, jr) };
    if contiguous >= cols {
        let bias = bias_from(c.column_bias, jr);
        kernel(TileOut { ptr, row_stride: c.row_stride, cols, accumulate, bias });
    } else {
        let mut edge = [0.0f32; 4 * MR * NR];
        kernel(TileOut {
            ptr: edge.as_mut_ptr(),
            row_stride: 2 * NR,
            cols: 2 * NR,
            accumulate: false,
            bias: std::ptr::null(),
        });
        // SAFETY: the caller's region.
        unsafe { c.store([ir, jr], [rows, cols], &edge, 2 * NR, accumulate) };
    }
}

/// One `MR×NR` tile at rows `ir`, columns `jr` of the block (see [`macro_kernel`]);
/// a ragged tile is computed into a small buffer and only its valid part copied out.
fn narrow_tile(
    micro_kernel: MicroKernel,
    [ir, jr]: [usize; 2],
    [mc, kc, nc]: [usize; 3],
    a_pack: &[f32],
    b_block: PackedBlock,
    c: OutputBlock,
    accumulate: bool,
) {
    let (rows, cols) = (MR.min(mc - ir), NR.min(nc - jr));
    let a_panel = &a_pack[ir * kc..(ir + MR) * kc];
    let b_panel = b_block.packed_panel(jr);
    // SAFETY: the panels hold kc steps each (sliced above); the tile lies inside the
    // caller's block (and its bias, one value per column, inside the block's), and a
    // tile that is ragged or not contiguous in memory is computed into `edge` and only
    // its valid part stored. The kernel matches the CPU (see `gemm`).
    unsafe {
        let (tile, contiguous) = c.run(ir, jr);
        if rows == MR && cols == NR && contiguous >= NR {
            micro_kernel(kc, a_panel.as_ptr(), b_panel.as_ptr(), tile, c.row_stride, accumulate);
            if !c.column_bias.is_null() {
                let bias = std::slice::from_raw_parts(c.column_bias.add(jr), NR);
                for r in 0..MR {
                    let row = std::slice::from_raw_parts_mut(tile.add(r * c.row_stride), NR);
                    row.iter_mut().zip(bias).for_each(|(o, b)| *o += b);
                }
            }
            return;
        }
        let mut edge = [0.0f32; MR * NR];
        micro_kernel(kc, a_panel.as_ptr(), b_panel.as_ptr(), edge.as_mut_ptr(), NR, false);
        c.store([ir, jr], [rows, cols], &edge, NR, accumulate);
    }
}

/// Where element `(i, p)` of an `m×k` matrix lies once packed by [`pack_whole_a`]: in
/// the depth block starting at `pc` (a multiple of [`depth_block`], `kc` deep), the
/// `MR`-row panel holding row `i`, step `p − pc`.
pub fn packed_a_index(m: usize, k: usize, i: usize, p: usize) -> usize {
    let block = depth_block(k);
    let pc = p / block * block;
    let kc = block.min(k - pc);
    pc * m.next_multiple_of(MR) + (i - i % MR) * kc + (p - pc) * MR + i % MR
}

/// The packed `m×k` matrix in `data` cut into its panels, one per depth block and
/// `MR` rows, in the order [`packed_a_index`] lays them out.
pub fn packed_a_panels(data: &mut [f32], m: usize, k: usize) -> Vec<PackedPanel<'_>> {
    let block = depth_block(k);
    let mut rest = &mut data[..m.next_multiple_of(MR) * k];
    let mut panels = Vec::new();
    for pc in (0..k).step_by(block) {
        let kc = block.min(k - pc);
        for first_row in (0..m).step_by(MR) {
            let (panel, tail) = rest.split_at_mut(MR * kc);
            panels.push(PackedPanel { first_row, depth: pc..pc + kc, data: panel });
            rest = tail;
        }
    }
    panels
}

/// All of the `m×k` matrix `a`, packed block by block in the order [`gemm`] reads them:
/// the `(pc, ic)` block starts at `pc·m′ + ic·kc` (`m′` is `m` rounded up to [`MR`]).
pub fn pack_whole_a(a: &Strided, m: usize, k: usize) -> Vec<f32> {
    let rounded = m.next_multiple_of(MR);
    let mut out = vec![0.0; rounded * k];
    let block = depth_block(k);
    for pc in (0..k).step_by(block) {
        let kc = block.min(k - pc);
        for ic in (0..m).step_by(MC) {
            pack_a(a, ic, pc, MC.min(m - ic), kc, &mut out[pc * rounded + ic * kc..]);
        }
    }
    out
}

/// Packs rows `ic..ic+mc`, columns `pc..pc+kc` of `A` into `MR`-row panels: panel `t`
/// holds, for each column, its `MR` values (zero past the last row).
fn pack_a(a: &Strided, ic: usize, pc: usize, mc: usize, kc: usize, out: &mut [f32]) {
    for (t, panel) in out[..mc.next_multiple_of(MR) * kc].chunks_exact_mut(MR * kc).enumerate() {
        let rows = MR.min(mc - t * MR);
        if rows < MR {
            panel.fill(0.0);
        }
        a.transposed().interleave([pc, kc], [ic + t * MR, rows], MR, panel);
    }
}

/// Packs rows `pc..pc+kc`, columns `jc..jc+nc` of `B` into `NR`-column panels, zero past
/// the last column.
fn pack_b(b: &impl PackB, pc: usize, jc: usize, kc: usize, nc: usize, out: &mut [f32]) {
    b.pack_block(pc, kc, jc, nc, out);
}

/// [`PackB::pack_block`] panel by panel: each panel zeroed where it is ragged, then
/// filled by [`PackB::pack`].
pub fn pack_panels<B: PackB + ?Sized>(
    b: &B,
    [first_row, rows]: [usize; 2],
    [first_col, cols]: [usize; 2],
    out: &mut [f32],
) {
    for (t, panel) in out[..cols.next_multiple_of(NR) * rows].chunks_exact_mut(NR * rows).enumerate() {
        let width = NR.min(cols - t * NR);
        if width < NR {
            panel.fill(0.0);
        }
        b.pack(first_row, rows, first_col + t * NR, width, panel);
    }
}
