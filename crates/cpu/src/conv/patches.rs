//! The im2col matrix of a group of images, never materialized: it writes its packed GEMM
//! panels straight from the input. Row `(c, kh, kw)` of the matrix is channel `c` seen
//! through kernel tap `(kh, kw)`, column `(image, y, x)` one output pixel. The input is
//! first zero-padded ([`PaddedInput`]), so every entry is a plain load: entry `(row,
//! column)` sits at `tap_offset[row] + pixel_offset[column]`, and consecutive pixels of
//! one output row read evenly spaced (with stride 1, consecutive) input elements. A
//! panel row is therefore a few short copies, with no bounds checks or divisions.

use kiln_tensor::Conv2dGeometry;
use rayon::prelude::*;

use crate::gemm::{NR, PackB};
use crate::memory::{HostMemory, Scratch};

/// A batch zero-padded on every side by the convolution's padding.
pub struct PaddedInput<'a> {
    data: Padded<'a>,
    /// Padded width.
    width: usize,
    /// Elements per padded image.
    image: usize,
    /// Offset of each patch row's first element within an image.
    tap_offsets: Vec<usize>,
}

/// The input itself when the convolution has no padding, else a padded copy.
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

impl<'a> PaddedInput<'a> {
    /// Pads `x` for convolution `g` (borrowing it when there is no padding).
    pub fn new(memory: &'a HostMemory, x: &'a [f32], g: &Conv2dGeometry) -> Self {
        let (height, width) = (g.in_h + 2 * g.padding.0, g.in_w + 2 * g.padding.1);
        let data = if g.padding == (0, 0) {
            Padded::Borrowed(x)
        } else {
            let mut padded = memory.scratch_zeroed(g.batch * g.in_channels * height * width);
            padded.par_chunks_mut(height * width).zip(x.par_chunks(g.in_h * g.in_w)).for_each(
                |(out, plane)| {
                    for (y, row) in plane.chunks(g.in_w).enumerate() {
                        let start = (y + g.padding.0) * width + g.padding.1;
                        out[start..start + g.in_w].copy_from_slice(row);
                    }
                },
            );
            Padded::Copied(padded)
        };
        let mut tap_offsets = Vec::with_capacity(g.in_channels * g.kernel_h * g.kernel_w);
        for c in 0..g.in_channels {
            for kh in 0..g.kernel_h {
                tap_offsets.extend((0..g.kernel_w).map(|kw| (c * height + kh) * width + kw));
            }
        }
        PaddedInput { data, width, image: g.in_channels * height * width, tap_offsets }
    }
}

/// Output pixels `at..at + len` of the range being packed: one stretch of an output row,
/// whose first pixel reads the padded input at `tap_offset + offset`.
#[derive(Clone, Copy, Default)]
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
            let offset = image * self.input.image + y * g.stride.0 * self.input.width + x * g.stride.1;
            f(Run { offset, len, at });
            at += len;
        }
    }

    /// The `len` input elements from `start` on, `stride` apart.
    fn elements(&self, start: usize, len: usize) -> impl Iterator<Item = &f32> {
        let stride = self.geometry.stride.1;
        self.input.data[start..start + (len - 1) * stride + 1].iter().step_by(stride)
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

impl PackB for Patches<'_> {
    fn pack(&self, first_row: usize, rows: usize, first_col: usize, cols: usize, panel: &mut [f32]) {
        let mut runs = [Run::default(); NR];
        let mut count = 0;
        self.0.runs(first_col, cols, |run| {
            runs[count] = run;
            count += 1;
        });
        let taps = &self.0.input.tap_offsets[first_row..first_row + rows];
        let data = &self.0.input.data;
        let unit_stride = self.0.geometry.stride.1 == 1;
        for (out, tap) in panel.chunks_exact_mut(NR).zip(taps) {
            // Runs are assembled in `row` with fixed 16-float copies (`copy_16`).
            // A copy may spill past its run: the next run overwrites the spill, and only
            // the first `cols` entries reach the panel.
            let mut row = [0.0f32; 2 * NR];
            for run in &runs[..count] {
                let start = tap + run.offset;
                match data.get(start..start + NR) {
                    Some(source) if unit_stride => copy_16(source, &mut row[run.at..run.at + NR]),
                    _ => {
                        let target = &mut row[run.at..run.at + run.len];
                        target.iter_mut().zip(self.0.elements(start, run.len)).for_each(|(o, v)| *o = *v);
                    }
                }
            }
            // All NR entries, also past `cols` when the panel is ragged: those feed only
            // columns of C that the GEMM discards, and one fixed-size copy keeps the
            // compiler from turning this into a `memcpy` call.
            copy_16(&row[..NR], out);
        }
    }
}

impl PackB for PatchesTransposed<'_> {
    fn pack(&self, first_row: usize, rows: usize, first_col: usize, cols: usize, panel: &mut [f32]) {
        let mut runs = Vec::with_capacity(rows.div_ceil(self.0.geometry.out_w()) + 1);
        self.0.runs(first_row, rows, |run| runs.push(run));
        let taps = &self.0.input.tap_offsets[first_col..first_col + cols];
        for (j, tap) in taps.iter().enumerate() {
            for run in &runs {
                let column = &mut panel[run.at * NR + j..];
                for (t, value) in self.0.elements(tap + run.offset, run.len).enumerate() {
                    column[t * NR] = *value;
                }
            }
        }
    }
}
