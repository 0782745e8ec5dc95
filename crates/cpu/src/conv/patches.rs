//! The im2col matrix of a group of images, never materialized: it writes its packed GEMM
//! panels (or, for the kernels that read rows of `B` in place, its rows) straight from
//! the input. Row `(c, kh, kw)` of the matrix is channel `c` seen
//! through kernel tap `(kh, kw)`, column `(image, y, x)` one output pixel. The input is
//! first zero-padded ([`PaddedInput`]), so every entry is a plain load: entry `(row,
//! column)` sits at `tap_offset[row] + pixel_offset[column]`, and consecutive pixels of
//! one output row read evenly spaced input elements — consecutive ones with stride 1,
//! or when a strided convolution's input is split by stride phase
//! ([`InputLayout::Phases`]). A panel row is therefore a few short copies, with no
//! bounds checks or divisions.

use kiln_tensor::Conv2dGeometry;
use rayon::prelude::*;

use super::phase_split::{PhaseSplit, Splitter, every_nth};
use crate::gemm::{NR, PackB};
use crate::memory::{HostMemory, Scratch};
use crate::simd::{VectorLoop, widest};

/// How [`PaddedInput`] lays out each padded channel plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputLayout {
    /// Row after row, as the input is: the taps of one kernel row read consecutive
    /// elements (what the weight gradient's transposed panels copy at once).
    Rows,
    /// Split into `stride_h·stride_w` phase planes, phase `(a, b)` holding the padded
    /// elements `(y, x)` with `y % stride_h = a` and `x % stride_w = b`: consecutive
    /// output pixels read consecutive elements whatever the stride (what the forward
    /// pass's panels copy at once). The same as `Rows` for stride 1.
    Phases,
}

/// A batch zero-padded on every side by the convolution's padding, in an
/// [`InputLayout`].
pub struct PaddedInput<'a> {
    data: Padded<'a>,
    /// Elements per padded image.
    image: usize,
    /// Distance between the elements that vertically adjacent output pixels read.
    row_step: usize,
    /// Distance between the elements that horizontally adjacent output pixels read.
    col_step: usize,
    /// Offset of each patch row's first element within an image.
    tap_offsets: Vec<usize>,
}

/// The input itself when it needs no copy, else a padded (or phase-split) copy.
enum Padded<'a> {
    Borrowed(&'a [f32]),
    Copied(Scratch<'a>),
}

impl std::ops::Deref for Padded<'_> {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        match self {
            Padded::Borrowed(data) => data,
            Padded::Copied(data) => data,
        }
    }
}

/// Whether [`PaddedInput::new`] pads its channel planes in parallel (a whole batch) or
/// one after another (a group of images whose task already runs beside the others: its
/// planes then stay in this core's cache for its patches).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// Planes split among rayon's threads.
    Parallel,
    /// Planes padded by the calling thread.
    InThisTask,
}

impl<'a> PaddedInput<'a> {
    /// Pads `x` for convolution `g` in `layout` (borrowing it when that changes
    /// nothing: no padding, and rows or stride 1).
    pub fn new(
        memory: &'a HostMemory,
        x: &'a [f32],
        g: &Conv2dGeometry,
        layout: InputLayout,
        padding: Padding,
    ) -> Self {
        let (sh, sw) = match layout {
            InputLayout::Rows => (1, 1),
            InputLayout::Phases => g.stride,
        };
        let split = PhaseSplit::new(g, (sh, sw));
        let (phase_h, phase_w) = split.phase;
        let plane = split.len();
        let data = if g.padding == (0, 0) && (sh, sw) == (1, 1) {
            Padded::Borrowed(x)
        } else {
            let mut padded = memory.scratch(g.batch * g.in_channels * plane);
            let splitter = Splitter::detect();
            let pad_plane = |(out, source): (&mut [f32], &[f32])| split.split(splitter, source, out);
            let planes = g.in_h * g.in_w;
            match padding {
                Padding::Parallel => {
                    padded.par_chunks_mut(plane).zip(x.par_chunks(planes)).for_each(pad_plane)
                }
                Padding::InThisTask => {
                    for (i, (out, source)) in padded.chunks_mut(plane).zip(x.chunks(planes)).enumerate() {
                        if let Some(ahead) =
                            x.get((i + PLANES_AHEAD) * planes..(i + PLANES_AHEAD + 1) * planes)
                        {
                            prefetch(ahead);
                        }
                        pad_plane((out, source));
                    }
                }
            }
            Padded::Copied(padded)
        };
        let mut tap_offsets = Vec::with_capacity(g.in_channels * g.kernel_h * g.kernel_w);
        for c in 0..g.in_channels {
            for kh in 0..g.kernel_h {
                tap_offsets.extend((0..g.kernel_w).map(|kw| {
                    let phase = (c * sh + kh % sh) * sw + kw % sw;
                    (phase * phase_h + kh / sh) * phase_w + kw / sw
                }));
            }
        }
        PaddedInput {
            data,
            image: g.in_channels * plane,
            row_step: g.stride.0 / sh * phase_w,
            col_step: g.stride.1 / sw,
            tap_offsets,
        }
    }
}

/// How many planes ahead of the one being padded [`PaddedInput::new`] asks the cache
/// for (one at a time in this task): the copy waits on memory for the input, which the
/// hardware prefetcher alone fetches too late (the 3×3 stride-2 forward of 128 images
/// of 64 channels at 28×28: 19.79–19.91 → 19.61–19.65 ms, two planes ahead; one and
/// eight measured the same, into L2 only 19.88 ms).
const PLANES_AHEAD: usize = 2;

/// Asks the cache to fetch `data`, a line at a time.
fn prefetch(data: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    for line in data.chunks(16) {
        // SAFETY: a prefetch only hints the cache; the address lies inside `data`.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(line.as_ptr().cast())
        };
    }
}

/// Output pixels `at..at + len` of the range being packed: one stretch of an output row,
/// whose first pixel reads the padded input at `tap_offset + offset`.
#[derive(Clone, Copy)]
struct Run {
    offset: usize,
    len: usize,
    at: usize,
}

/// The unrolled receptive fields of images `first_image..` of a padded input: a
/// `[C·kH·kW, images·oH·oW]` matrix ([`Patches`]) or its transpose
/// ([`PatchesTransposed`]).
#[derive(Clone, Copy)]
pub struct PatchSource<'a> {
    /// The whole padded batch.
    pub input: &'a PaddedInput<'a>,
    /// Index of the group's first image.
    pub first_image: usize,
    /// The convolution.
    pub geometry: &'a Conv2dGeometry,
}

/// The im2col matrix as the GEMM's right-hand side (`k` = patch rows, `n` = pixels).
pub struct Patches<'a>(pub PatchSource<'a>);

/// Its transpose (`k` = pixels, `n` = patch rows), for the weight gradient.
pub struct PatchesTransposed<'a>(pub PatchSource<'a>);

impl PatchSource<'_> {
    /// The runs of output pixels `first..first + count` (see [`PatchSource::runs`]).
    fn runs_of(&self, first: usize, count: usize) -> Vec<Run> {
        let mut runs = Vec::with_capacity(count.div_ceil(self.geometry.out_w()) + 1);
        self.runs(first, count, |run| runs.push(run));
        runs
    }

    /// Splits output pixels `first..first + count` (numbered across the group's images)
    /// into runs along output rows, handing each to `f`.
    fn runs(&self, first: usize, count: usize, mut f: impl FnMut(Run)) {
        let g = self.geometry;
        let (oh, ow) = (g.out_h(), g.out_w());
        let plane = oh * ow;
        let mut at = 0;
        while at < count {
            let pixel = first + at;
            let (image, within) = (self.first_image + pixel / plane, pixel % plane);
            let (y, x) = (within / ow, within % ow);
            let len = (ow - x).min(count - at);
            let offset = image * self.input.image + y * self.input.row_step + x * self.input.col_step;
            f(Run { offset, len, at });
            at += len;
        }
    }
}

/// Copies `NR` floats as one fixed-size array assignment: a few vector moves, where a
/// slice copy of a length the compiler cannot see becomes a `memcpy` call.
#[inline(always)]
fn copy_16(source: &[f32], target: &mut [f32]) {
    let source: &[f32; NR] = source.try_into().expect("NR floats");
    let target: &mut [f32; NR] = target.try_into().expect("NR floats");
    *target = *source;
}

/// Copies the `len` (at most [`NR`]) floats at `data[start..]` to `panel[at..]`: as one
/// [`copy_16`] when both slices have 16 floats there (the caller overwrites or ignores
/// the spill past `len`), else exactly `len`.
#[inline(always)]
fn copy_run(data: &[f32], start: usize, panel: &mut [f32], at: usize, len: usize) {
    match (data.get(start..start + NR), panel.get_mut(at..at + NR)) {
        (Some(source), Some(target)) => copy_16(source, target),
        _ => panel[at..at + len].copy_from_slice(&data[start..start + len]),
    }
}

impl PackB for Patches<'_> {
    /// One panel is a block of one panel.
    fn pack(&self, first_row: usize, rows: usize, first_col: usize, cols: usize, panel: &mut [f32]) {
        self.pack_block(first_row, rows, first_col, cols, panel);
    }

    /// Sixteen taps at a time: each tap's row of the block is gathered into a buffer,
    /// its pixels coming in runs along output rows (read front to back), then each
    /// panel takes its 16 floats of the sixteen rows, which lie one after another in
    /// it. With consecutive pixels reading consecutive elements (stride 1, or
    /// [`InputLayout::Phases`]), a run is copied in fixed 16-float moves whose spill
    /// lands on entries the next run overwrites (or past `cols`, zeroed after).
    fn pack_block(&self, first_row: usize, rows: usize, first_col: usize, cols: usize, out: &mut [f32]) {
        widest(PackRows { patches: self, first_row, rows, first_col, cols, out, layout: Layout::Panels })
    }

    /// Row after row, each straight from the padded input: where the GEMM's kernels
    /// read rows in place, the patches skip the sixteen-tap staging and the dealing out
    /// into panels (the 3×3 stride-2 forward of 128 images of 64 channels at 28×28:
    /// 19.60–19.80 → 19.32–19.41 ms, six alternations).
    fn pack_rows(
        &self,
        first_row: usize,
        rows: usize,
        first_col: usize,
        cols: usize,
        stride: usize,
        out: &mut [f32],
    ) -> bool {
        widest(PackRows {
            patches: self,
            first_row,
            rows,
            first_col,
            cols,
            out,
            layout: Layout::Rows { stride },
        });
        true
    }
}

/// Taps gathered before they are dealt out to the panels: a panel then receives one
/// contiguous kilobyte per group instead of a 64-byte line per tap, each line a whole
/// panel (`rows·NR` floats) from the last (the 3×3 stride-2 forward of 128 images of
/// 64 channels at 28×28: 22.2–22.4 ms against 22.6–23.2 ms tap by tap).
const TAP_GROUP: usize = 16;

/// How [`PackRows`] lays out the block it writes.
#[derive(Clone, Copy)]
enum Layout {
    /// `NR`-column panels ([`Patches::pack_block`]).
    Panels,
    /// Row-major, rows `stride` floats apart ([`Patches::pack_rows`]).
    Rows { stride: usize },
}

/// [`Patches::pack_block`]'s and [`Patches::pack_rows`]'s loop, compiled for the
/// widest vectors: a 16-float move is then one AVX-512 load and store instead of four
/// SSE pairs.
struct PackRows<'a, 'b> {
    patches: &'a Patches<'b>,
    first_row: usize,
    rows: usize,
    first_col: usize,
    cols: usize,
    out: &'a mut [f32],
    layout: Layout,
}

impl VectorLoop for PackRows<'_, '_> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let PackRows { patches, first_row, rows, first_col, cols, out, layout } = self;
        let runs = patches.0.runs_of(first_col, cols);
        let taps = &patches.0.input.tap_offsets[first_row..first_row + rows];
        if let Layout::Rows { stride } = layout {
            for (row, &tap) in out.chunks_exact_mut(stride).zip(taps) {
                patches.fill_row(tap, &runs, cols, row);
            }
            return;
        }
        let width = cols.next_multiple_of(NR);
        // One panel's width of slack after each row takes its last run's spill.
        let stride = width + NR;
        let mut staged = vec![0.0; TAP_GROUP * stride];
        for (g, group) in taps.chunks(TAP_GROUP).enumerate() {
            for (row, &tap) in staged.chunks_exact_mut(stride).zip(group) {
                patches.fill_row(tap, &runs, cols, row);
            }
            for t in 0..width / NR {
                let panel = &mut out[(t * rows + g * TAP_GROUP) * NR..][..group.len() * NR];
                for (i, chunk) in panel.chunks_exact_mut(NR).enumerate() {
                    copy_16(&staged[i * stride + t * NR..][..NR], chunk);
                }
            }
        }
    }
}

impl Patches<'_> {
    /// Row `tap` of the block's `cols` columns, whose pixels come in `runs`, into
    /// `row` (at least `cols` rounded up to [`NR`], plus `NR`), zero from `cols` on.
    /// Where every run is one 16-float move inside the input, the moves go without
    /// per-run bounds checks (the 3×3 stride-2 forward of 128 images of 64 channels at
    /// 28×28: 20.16–20.26 → 19.79–19.95 ms).
    #[inline(always)]
    fn fill_row(&self, tap: usize, runs: &[Run], cols: usize, row: &mut [f32]) {
        let data = &self.0.input.data;
        let last = runs.last().map_or(0, |run| run.offset);
        if self.0.input.col_step == 1 && runs.iter().all(|run| run.len <= NR) && tap + last + NR <= data.len()
        {
            // Every run is one 16-float move, all of whose sources lie in the input
            // (runs come in rising offsets) and all of whose targets lie in `row`
            // (`run.at + run.len <= cols`): one load and store each, no checks.
            assert!(row.len() >= cols + NR, "a staged row of {} floats for {cols} columns", row.len());
            let (source, target) = (data[tap..].as_ptr(), row.as_mut_ptr());
            for run in runs {
                // SAFETY: both ranges lie inside their slices (above).
                unsafe { std::ptr::copy_nonoverlapping(source.add(run.offset), target.add(run.at), NR) };
            }
        } else if self.0.input.col_step == 1 {
            for run in runs {
                for chunk in (0..run.len).step_by(NR) {
                    copy_run(data, tap + run.offset + chunk, row, run.at + chunk, NR.min(run.len - chunk));
                }
            }
        } else {
            for run in runs {
                every_nth(
                    &data[tap + run.offset..],
                    self.0.input.col_step,
                    &mut row[run.at..run.at + run.len],
                );
            }
        }
        row[cols..].fill(0.0);
    }
}

/// Consecutive patch rows `at..at + len` of a panel that read consecutive input
/// elements (the taps of one kernel row): one pixel's values for them are one copy.
#[derive(Clone, Copy, Default)]
struct Segment {
    at: usize,
    len: usize,
    tap: usize,
}

/// The panel columns `taps` (tap offsets) cut into [`Segment`]s, in order.
fn segments(taps: &[usize]) -> ([Segment; NR], usize) {
    let mut segments = [Segment::default(); NR];
    let mut count: usize = 0;
    for (j, &tap) in taps.iter().enumerate() {
        match count.checked_sub(1).map(|last| &mut segments[last]) {
            Some(last) if last.tap + last.len == tap => last.len += 1,
            _ => {
                segments[count] = Segment { at: j, len: 1, tap };
                count += 1;
            }
        }
    }
    (segments, count)
}

impl PackB for PatchesTransposed<'_> {
    /// Pixel by pixel: a panel row is the pixel's value under each of the panel's
    /// taps, which come in runs of consecutive input elements (a kernel row). Each
    /// segment is one fixed 16-float move straight into the panel; its spill lands
    /// on entries a later segment or row overwrites (or past `cols`), and only where
    /// a move would leave the panel or the input is it cut to length.
    fn pack(&self, first_row: usize, rows: usize, first_col: usize, cols: usize, panel: &mut [f32]) {
        let (segments, count) = segments(&self.0.input.tap_offsets[first_col..first_col + cols]);
        let segments = &segments[..count];
        let data = &self.0.input.data;
        let stride = self.0.input.col_step;
        let panel = &mut panel[..rows * NR];
        self.0.runs(first_row, rows, |run| {
            for t in 0..run.len {
                let (pixel, row) = (run.offset + t * stride, (run.at + t) * NR);
                for segment in segments {
                    copy_run(data, pixel + segment.tap, panel, row + segment.at, segment.len);
                }
            }
        });
    }
}
