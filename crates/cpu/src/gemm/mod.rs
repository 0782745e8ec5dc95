//! Single-precision GEMM: a cache-blocked loop over packed panels ([`packed`]) around
//! micro-kernels picked once at run time ([`GemmKernel`]): 6×16 tiles, and 12×32 tiles
//! over two by two panels on AVX-512. The right-hand matrix
//! is anything that can write its own packed panels ([`PackB`]), so convolutions feed
//! their unrolled receptive fields straight into the panels without materializing the
//! im2col matrix. Plain matrix products are split over rayon's pool when called from
//! outside it and big enough.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod packed;
mod portable;
mod transpose;

use std::sync::OnceLock;

use kiln_tensor::MatmulDims;
pub use packed::RowEpilogue;
use rayon::prelude::*;
pub(crate) use transpose::gather_columns;

/// Rows of `C` one micro-kernel call produces.
pub const MR: usize = 6;
/// Columns of `C` one micro-kernel call produces (the width of a packed `B` panel).
pub const NR: usize = 16;

/// Below this many multiply-adds a plain GEMM runs on the calling thread.
const PARALLEL_MIN_WORK: usize = 1 << 20;

/// The micro-kernel behind every GEMM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GemmKernel {
    /// Twenty-four 16-lane AVX-512 registers holding a 12×32 tile (two by two packed
    /// panels), a 6×32 one for the rows below the last 12-row tile, and the AVX2 kernel
    /// for tiles narrower than 32 columns.
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// Twelve 8-lane AVX2 registers updated with fused multiply-adds.
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
    /// Plain Rust the compiler vectorizes for the build's baseline (SSE2, NEON).
    Portable,
}

impl GemmKernel {
    /// The kernel every GEMM of this process runs, chosen once: the one named by the
    /// environment variable `KILN_GEMM_KERNEL` (`avx512`, `avx2`, `portable`) when this
    /// CPU runs it, else the fastest this CPU runs. The variable exists to compare
    /// kernels on one machine and to reproduce another machine's kernel.
    pub fn detect() -> Self {
        static DETECTED: OnceLock<GemmKernel> = OnceLock::new();
        *DETECTED.get_or_init(|| {
            let requested = std::env::var("KILN_GEMM_KERNEL").ok().and_then(|name| GemmKernel::named(&name));
            requested.filter(|k| k.is_available()).unwrap_or_else(GemmKernel::fastest)
        })
    }

    /// The fastest kernel this CPU runs.
    pub fn fastest() -> Self {
        #[cfg(target_arch = "x86_64")]
        if avx512::available() {
            return GemmKernel::Avx512;
        }
        #[cfg(target_arch = "x86_64")]
        if avx2::available() {
            return GemmKernel::Avx2Fma;
        }
        GemmKernel::Portable
    }

    /// The kernel called `name` (`avx512`, `avx2`, `portable`), if it exists on this
    /// architecture.
    pub fn named(name: &str) -> Option<Self> {
        match name {
            #[cfg(target_arch = "x86_64")]
            "avx512" => Some(GemmKernel::Avx512),
            #[cfg(target_arch = "x86_64")]
            "avx2" => Some(GemmKernel::Avx2Fma),
            "portable" => Some(GemmKernel::Portable),
            _ => None,
        }
    }

    /// Whether this CPU can run the kernel.
    pub fn is_available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            GemmKernel::Avx512 => avx512::available(),
            #[cfg(target_arch = "x86_64")]
            GemmKernel::Avx2Fma => avx2::available(),
            GemmKernel::Portable => true,
        }
    }

    /// A short name for benchmark reports.
    pub fn name(self) -> &'static str {
        match self {
            #[cfg(target_arch = "x86_64")]
            GemmKernel::Avx512 => "packed 12x32, avx512f",
            #[cfg(target_arch = "x86_64")]
            GemmKernel::Avx2Fma => "packed 6x16, avx2+fma",
            GemmKernel::Portable => "packed 6x16, portable",
        }
    }

    /// The kernels: `C[MR×NR] (+)= A panel · B panel` over `k` steps, and where the
    /// CPU has one, a wide kernel over two by two panels.
    fn kernels(self) -> packed::Kernels {
        match self {
            #[cfg(target_arch = "x86_64")]
            GemmKernel::Avx512 => packed::Kernels {
                tile: avx2::kernel,
                wide: Some(avx512::kernel),
                tail: avx512::tail_kernel,
                rows: avx512::rows_kernel,
                narrow: avx512::narrow_kernel,
            },
            #[cfg(target_arch = "x86_64")]
            GemmKernel::Avx2Fma => packed::Kernels {
                tile: avx2::kernel,
                wide: None,
                tail: |_| None,
                rows: |_, _, _| None,
                narrow: |_| None,
            },
            GemmKernel::Portable => packed::Kernels {
                tile: portable::kernel,
                wide: None,
                tail: |_| None,
                rows: |_, _, _| None,
                narrow: |_| None,
            },
        }
    }
}

/// A `k×n` right-hand matrix that writes its own packed panels.
pub trait PackB: Sync {
    /// Writes rows `first_row..first_row + rows` of columns `first_col..first_col +
    /// cols` (`cols <= NR`) into `panel`, row `p` at `panel[p·NR..]`. Entries of the
    /// panel past `cols` are zeroed by the caller first; an implementation may
    /// overwrite them, since they only produce columns of `C` the GEMM discards.
    fn pack(&self, first_row: usize, rows: usize, first_col: usize, cols: usize, panel: &mut [f32]);

    /// Writes rows `first_row..first_row + rows` of columns `first_col..first_col + cols`
    /// as consecutive `NR`-column panels (panel `t` at `out[t·rows·NR..]`), zero past
    /// the last column: [`PackB::pack`] panel by panel, unless the source has a faster
    /// order for a whole block.
    fn pack_block(&self, first_row: usize, rows: usize, first_col: usize, cols: usize, out: &mut [f32]) {
        packed::pack_panels(self, [first_row, rows], [first_col, cols], out);
    }

    /// Writes rows `first_row..first_row + rows` of columns `first_col..first_col +
    /// cols` row-major into `out`, row `p` from `out[p·stride..]` (`stride` is `cols`
    /// rounded up to [`NR`], plus `NR`; the entries past `cols` may hold anything, since
    /// they only produce columns of `C` the GEMM discards), when this source writes rows
    /// faster than panels, and says whether it did: the AVX-512 kernels read such a
    /// block in place. No by default.
    fn pack_rows(
        &self,
        _first_row: usize,
        _rows: usize,
        _first_col: usize,
        _cols: usize,
        _stride: usize,
        _out: &mut [f32],
    ) -> bool {
        false
    }
}

/// A matrix stored in a slice with element strides (a transposed matrix swaps them).
#[derive(Clone, Copy, Debug)]
pub struct Strided<'a> {
    /// The elements.
    pub data: &'a [f32],
    /// Index of element `(0, 0)` in `data`.
    pub offset: usize,
    /// Distance between rows.
    pub row_stride: usize,
    /// Distance between columns.
    pub col_stride: usize,
}

impl Strided<'_> {
    /// Element `(i, j)`.
    fn at(&self, i: usize, j: usize) -> f32 {
        self.data[self.offset + i * self.row_stride + j * self.col_stride]
    }

    /// The same elements seen transposed.
    fn transposed(self) -> Self {
        Strided { row_stride: self.col_stride, col_stride: self.row_stride, ..self }
    }

    /// Writes rows `first_row..first_row + rows` of columns `first_col..first_col + cols`
    /// into `panel` interleaved `width` to a row: element `(first_row + p, first_col +
    /// j)` goes to `panel[p·width + j]`. Both packed layouts are this: `B` panels with
    /// `width` [`NR`], `A` panels (of `Aᵀ`) with `width` [`MR`].
    fn interleave(
        &self,
        [first_row, rows]: [usize; 2],
        [first_col, cols]: [usize; 2],
        width: usize,
        panel: &mut [f32],
    ) {
        if self.col_stride == 1 {
            for (p, out) in panel.chunks_exact_mut(width).take(rows).enumerate() {
                let start = self.offset + (first_row + p) * self.row_stride + first_col;
                let source = &self.data[start..start + cols];
                if cols == NR && width == NR {
                    // A fixed-size copy is a few vector moves, not a memcpy call.
                    out.copy_from_slice(source);
                } else {
                    out[..cols].iter_mut().zip(source).for_each(|(o, v)| *o = *v);
                }
            }
        } else if self.row_stride == 1 {
            let start = self.offset + first_row + first_col * self.col_stride;
            transpose::gather_columns(self.data, [start, self.col_stride], [rows, cols], width, panel);
        } else {
            for j in 0..cols {
                for p in 0..rows {
                    panel[p * width + j] = self.at(first_row + p, first_col + j);
                }
            }
        }
    }
}

impl PackB for Strided<'_> {
    fn pack(&self, first_row: usize, rows: usize, first_col: usize, cols: usize, panel: &mut [f32]) {
        self.interleave([first_row, rows], [first_col, cols], NR, panel);
    }

    /// Row by row for a row-major matrix: each source row is read once, front to back,
    /// and dealt out 16 floats to a panel. Panel by panel, every panel would read one
    /// 64-byte piece of each of `rows` rows a whole row apart (a new page per row for a
    /// wide matrix: a dense layer's weight in its input gradient).
    fn pack_block(&self, first_row: usize, rows: usize, first_col: usize, cols: usize, out: &mut [f32]) {
        if self.col_stride != 1 {
            return packed::pack_panels(self, [first_row, rows], [first_col, cols], out);
        }
        for p in 0..rows {
            let source = &self.data[self.offset + (first_row + p) * self.row_stride + first_col..][..cols];
            for (t, chunk) in source.chunks(NR).enumerate() {
                let target = &mut out[(t * rows + p) * NR..][..NR];
                if chunk.len() == NR {
                    target.copy_from_slice(chunk);
                } else {
                    target[..chunk.len()].copy_from_slice(chunk);
                    target[chunk.len()..].fill(0.0);
                }
            }
        }
    }
}

/// The left-hand side of a GEMM: a strided matrix, packed block by block as the GEMM
/// goes, or one packed once up front for many GEMMs.
#[derive(Clone, Copy)]
pub enum Left<'a> {
    /// Packed on the fly.
    Strided(&'a Strided<'a>),
    /// Already packed.
    Packed(PackedView<'a>),
}

/// A left-hand matrix packed once into the layout the GEMM reads, so GEMMs that share
/// it (a convolution's weights, across its image groups) skip packing it again.
pub struct PackedA {
    data: Vec<f32>,
    rows: usize,
    depth: usize,
}

impl PackedA {
    /// Packs the `rows×depth` matrix `a`.
    pub fn new(a: &Strided, rows: usize, depth: usize) -> Self {
        PackedA { data: packed::pack_whole_a(a, rows, depth), rows, depth }
    }

    /// The packed matrix as a GEMM's left-hand side.
    pub fn view(&self) -> PackedView<'_> {
        PackedView { data: &self.data, rows: self.rows, depth: self.depth }
    }
}

/// A `rows×depth` left-hand matrix in the packed layout, borrowed: from a [`PackedA`],
/// or written in that layout by its producer ([`PackedView::index`]), which then skips
/// packing altogether.
#[derive(Clone, Copy)]
pub struct PackedView<'a> {
    data: &'a [f32],
    rows: usize,
    depth: usize,
}

impl<'a> PackedView<'a> {
    /// `data` as a packed `rows×depth` matrix: element `(i, k)` at
    /// [`PackedView::index`], rows past `rows` up to the next multiple of [`MR`]
    /// present (their products are discarded). Panics if `data` is shorter than
    /// [`PackedView::len`].
    pub fn new(data: &'a [f32], rows: usize, depth: usize) -> Self {
        assert!(data.len() >= Self::len(rows, depth), "packed A: {} floats for {rows}x{depth}", data.len());
        PackedView { data, rows, depth }
    }

    /// Floats a packed `rows×depth` matrix takes.
    pub fn len(rows: usize, depth: usize) -> usize {
        rows.next_multiple_of(MR) * depth
    }

    /// Where element `(i, k)` of a packed `rows×depth` matrix lies.
    pub fn index(rows: usize, depth: usize, i: usize, k: usize) -> usize {
        packed::packed_a_index(rows, depth, i, k)
    }

    /// `data` (at least [`PackedView::len`] long) cut into its [`PackedPanel`]s, in
    /// layout order: pieces that parallel tasks can write independently.
    pub fn panels_mut(data: &mut [f32], rows: usize, depth: usize) -> Vec<PackedPanel<'_>> {
        packed::packed_a_panels(data, rows, depth)
    }
}

/// One [`MR`]-row panel of one depth block of a packed left-hand matrix
/// ([`PackedView::panels_mut`]).
pub struct PackedPanel<'a> {
    /// The matrix row of the panel's row 0.
    pub first_row: usize,
    /// The matrix columns (depth) the panel holds.
    pub depth: std::ops::Range<usize>,
    data: &'a mut [f32],
}

impl PackedPanel<'_> {
    /// Sets element `(first_row + r, depth.start + k)`.
    pub fn set(&mut self, r: usize, k: usize, value: f32) {
        self.data[k * MR + r] = value;
    }
}

/// Which threads one GEMM uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threads {
    /// Split into tasks across the current rayon pool when it is big enough.
    Pool,
    /// Only the calling thread (a caller that is itself one of many parallel tasks).
    Caller,
}

/// `C = op(A)·op(B)` with `C` row-major `[m, n]` (see [`MatmulDims`]), on the kernel
/// [`GemmKernel::detect`] picks.
pub fn gemm(a: &[f32], b: &[f32], c: &mut [f32], d: MatmulDims, threads: Threads) {
    gemm_with(GemmKernel::detect(), a, b, c, d, threads);
}

/// What a GEMM applies to `C` as it produces it, instead of a second pass over `C`.
#[derive(Clone, Copy, Default)]
pub struct Epilogue<'a> {
    /// `n` values, value `j` added to column `j` of every row (a dense layer's bias), in
    /// the kernels' stores.
    pub column_bias: Option<&'a [f32]>,
    /// Runs on every piece of a row of `C` as soon as it is complete (bias included),
    /// while it is in cache: `rows(row, first_col, values)`.
    pub rows: Option<RowEpilogue<'a>>,
}

/// [`gemm`] with an [`Epilogue`].
///
/// # Panics
/// If a buffer is smaller than `d` says, or the bias does not hold `n` values.
pub fn gemm_then(a: &[f32], b: &[f32], c: &mut [f32], d: MatmulDims, threads: Threads, epilogue: Epilogue) {
    if let Some(bias) = epilogue.column_bias {
        assert_eq!(bias.len(), d.n, "gemm: a column bias needs one value per column");
    }
    gemm_blocks(GemmKernel::detect(), a, b, c, d, threads, epilogue);
}

/// [`gemm`] on a chosen kernel.
///
/// # Panics
/// If a buffer is smaller than `d` says, or the CPU cannot run `kernel`.
pub fn gemm_with(kernel: GemmKernel, a: &[f32], b: &[f32], c: &mut [f32], d: MatmulDims, threads: Threads) {
    gemm_blocks(kernel, a, b, c, d, threads, Epilogue::default());
}

/// [`gemm_with`] with an [`Epilogue`] (its row indices those of the whole `C`; a bias of
/// `n` values).
fn gemm_blocks(
    kernel: GemmKernel,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    d: MatmulDims,
    threads: Threads,
    Epilogue { column_bias, rows: epilogue }: Epilogue,
) {
    let MatmulDims { m, k, n, trans_a, trans_b } = d;
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n, "gemm: buffers too small for {d:?}");
    let (rsa, csa) = if trans_a { (1, m) } else { (k, 1) };
    let (rsb, csb) = if trans_b { (1, k) } else { (n, 1) };
    let a_at = |row: usize| Strided { data: a, offset: row * rsa, row_stride: rsa, col_stride: csa };
    let b_at = |col: usize| Strided { data: b, offset: col * csb, row_stride: rsb, col_stride: csb };
    let c = OutputMatrix::new(c, n);
    let block = |rows: std::ops::Range<usize>, cols: std::ops::Range<usize>| {
        // SAFETY: concurrent calls receive disjoint blocks of C.
        let block = unsafe { c.block(rows.start, cols.start) };
        let column_bias = column_bias.map_or(std::ptr::null(), |bias| bias[cols.start..].as_ptr());
        let block = packed::OutputBlock { column_bias, ..block };
        let a = a_at(rows.start);
        let shifted = |r: usize, col: usize, values: &mut [f32]| {
            epilogue.expect("called only with an epilogue")(rows.start + r, cols.start + col, values)
        };
        let shifted: Option<RowEpilogue> = epilogue.map(|_| &shifted as RowEpilogue);
        packed::gemm(
            kernel,
            [rows.len(), k, cols.len()],
            Left::Strided(&a),
            &b_at(cols.start),
            block,
            shifted,
        );
    };
    let threads = match threads {
        Threads::Pool => rayon::current_num_threads(),
        Threads::Caller => 1,
    };
    if threads == 1 || m * n * k < PARALLEL_MIN_WORK {
        block(0..m, 0..n);
    } else if m >= n {
        // Splitting rows repeats the packing of B, splitting columns that of A: split
        // along the larger side so the repeated part is the smaller matrix.
        let step = m.div_ceil(threads * 2).next_multiple_of(MR);
        (0..m.div_ceil(step)).into_par_iter().for_each(|i| block(i * step..((i + 1) * step).min(m), 0..n));
    } else {
        let step = n.div_ceil(threads * 2).next_multiple_of(NR);
        (0..n.div_ceil(step)).into_par_iter().for_each(|j| block(0..m, j * step..((j + 1) * step).min(n)));
    }
}

/// Where [`gemm_packed`] writes its `m×n` result.
#[derive(Clone, Copy, Debug)]
pub enum OutputLayout {
    /// Row-major with row stride `ldc` (`n <= ldc`).
    RowMajor {
        /// Distance between rows.
        ldc: usize,
    },
    /// As NCHW images: the `n` columns are the pixels of `n / plane` consecutive
    /// images, each holding the `m` rows as planes of `plane` pixels (image `i`, row
    /// `r`, pixel `x` at `i·m·plane + r·plane + x`). A convolution writes its output
    /// this way straight from the GEMM, with no reordering pass.
    ImagePlanes {
        /// Pixels per plane; `n` is a multiple of it.
        plane: usize,
    },
}

/// `C = A·B` (or `C += A·B` when `accumulate`) on one thread with the detected kernel,
/// `A` an `m×k` matrix, `B` any [`PackB`] source, `C` laid out as `layout` says.
///
/// # Panics
/// If `c` is smaller than the layout needs, or a packed `A` is not `m×k`.
#[allow(clippy::too_many_arguments)]
pub fn gemm_packed(
    m: usize,
    k: usize,
    n: usize,
    a: Left,
    b: &impl PackB,
    c: &mut [f32],
    layout: OutputLayout,
    accumulate: bool,
) {
    if let Left::Packed(packed) = &a {
        assert!(packed.rows == m && packed.depth == k, "gemm: packed A is not {m}x{k}");
    }
    if m == 0 || n == 0 {
        return;
    }
    let block = match layout {
        OutputLayout::RowMajor { ldc } => {
            assert!(n <= ldc && c.len() >= (m - 1) * ldc + n, "gemm: output too small");
            // SAFETY: the only block, covering the whole (exclusively borrowed) matrix.
            packed::OutputBlock { accumulate, ..unsafe { OutputMatrix::new(c, ldc).block(0, 0) } }
        }
        OutputLayout::ImagePlanes { plane } => {
            assert!(
                plane > 0 && n.is_multiple_of(plane) && c.len() >= m * n,
                "gemm: output too small for {n} pixels"
            );
            let columns = packed::Columns::Planes { first: 0, plane, image_stride: m * plane };
            packed::OutputBlock {
                ptr: c.as_mut_ptr(),
                row_stride: plane,
                columns,
                accumulate,
                column_bias: std::ptr::null(),
            }
        }
    };
    packed::gemm(GemmKernel::detect(), [m, k, n], a, b, block, None);
}

/// A row-major output matrix shared by tasks that write disjoint blocks of it.
#[derive(Clone, Copy)]
struct OutputMatrix {
    ptr: *mut f32,
    row_stride: usize,
}

// SAFETY: tasks write disjoint blocks (see `block`).
unsafe impl Send for OutputMatrix {}
unsafe impl Sync for OutputMatrix {}

impl OutputMatrix {
    fn new(c: &mut [f32], row_stride: usize) -> Self {
        OutputMatrix { ptr: c.as_mut_ptr(), row_stride }
    }

    /// The block whose top-left element is `(row, col)`.
    ///
    /// # Safety
    /// Blocks used at the same time must not overlap, and stay inside the matrix.
    unsafe fn block(self, row: usize, col: usize) -> packed::OutputBlock {
        // SAFETY: inside the matrix, by the caller's guarantee.
        packed::OutputBlock {
            ptr: unsafe { self.ptr.add(row * self.row_stride + col) },
            row_stride: self.row_stride,
            columns: packed::Columns::Contiguous,
            accumulate: false,
            column_bias: std::ptr::null(),
        }
    }
}

#[cfg(test)]
mod tests;
