//! The AVX-512 micro-kernels: a 12×32 block of `C` from two consecutive packed `A`
//! panels (6 rows each) and two `B` panels (16 columns each: packed, or read in place
//! from row-major rows, see [`RightPanels`]), held in twenty-four 16-lane registers for
//! the whole `k` loop; blocks of 6 to 12 rows of a row-major `A` read in place (its
//! values are broadcast one at a time, so they need not be contiguous, and packing them
//! would only transpose them; for the common row strides, see [`rows_kernel`]; by two
//! panels, or by one and the first half of the next for a last pair of panels holding
//! few columns); and one for each count of rows left below the last 12-row tile (1 to
//! 11, `2·rows` registers). They read the same packed layout
//! as the 6×16 kernels, so packing (and the convolutions that pack their own panels) is
//! shared. A tile of 17 to 31 columns at the edge of a block is stored with lane masks;
//! a last single 16-column panel gets kernels of up to 12 rows by that one panel
//! ([`narrow_kernel`]; for rows read in place, the rows kernel with that panel as
//! both).
//!
//! Each entry of `C` is the same chain of fused multiply-adds, in the same order, as in
//! the AVX2 kernel, so both kernels give bit-identical results.

use std::arch::x86_64::*;

use super::packed::{NarrowKernel, RightPanels, RowsKernel, RowsWidth, TailKernel, TileOut};
use super::{MR, NR};

/// Rows of `C` one call produces: two `A` panels.
pub const WIDE_MR: usize = 2 * MR;

/// Whether this CPU can run [`kernel`] and the tail kernels (and the AVX2 kernel used
/// at the edges).
pub fn available() -> bool {
    is_x86_feature_detected!("avx512f") && super::avx2::available()
}

/// `kernel::<value>` (or `kernel::<value, FIXED>`) as a `Kernel` function pointer when
/// `value` is one of the listed constants (each a separately compiled instance), else
/// `None`.
macro_rules! instance {
    ($kernel:ident::<$value:ident> as $type:ty; $($constant:literal)*) => {
        match $value {
            $($constant => Some($kernel::<$constant> as $type),)*
            _ => None,
        }
    };
    ($kernel:ident::<$value:ident, $fixed:ident> as $type:ty; $($constant:literal)*) => {
        match $value {
            $($constant => Some($kernel::<$constant, $fixed> as $type),)*
            _ => None,
        }
    };
}

/// See [`super::packed::WideKernel`]: the `WIDE_MR×2NR` product of two packed `A`
/// panels (the second `a_next` floats after the first) and two `B` panels over `k`
/// steps, stored as `out` says.
///
/// # Safety
/// The CPU must support AVX-512F ([`available`]); each of the four panels must hold
/// `k` steps, and `out` a `WIDE_MR×cols` block.
#[target_feature(enable = "avx512f")]
pub unsafe fn kernel(k: usize, a: *const f32, a_next: usize, b: RightPanels, out: TileOut) {
    // SAFETY: the caller's guarantees, for two A panels.
    unsafe { tile::<WIDE_MR, 2, _>(k, Panels([a, a.add(a_next)]), b, out) }
}

/// The [`super::packed::TailKernel`] for `rows` (1 to `WIDE_MR − 1`) rows: the rows
/// left below the last whole 12-row tile, computed exactly (`2·rows` registers) rather
/// than as a padded tile through a buffer.
pub fn tail_kernel(rows: usize) -> Option<TailKernel> {
    instance!(rows_tail::<rows> as TailKernel; 1 2 3 4 5 6 7 8 9 10 11)
}

/// See [`super::packed::TailKernel`]: the `ROWS×2NR` product of the packed `A`
/// panels at `a` (rows past `MR` from the second, `a_next` floats on) and two `B`
/// panels over `k` steps, stored as `out` says.
///
/// # Safety
/// The CPU must support AVX-512F ([`available`]); the `A` panels holding the `ROWS`
/// rows and both `B` panels must hold `k` steps, and `out` a `ROWS×cols` block.
#[target_feature(enable = "avx512f")]
unsafe fn rows_tail<const ROWS: usize>(k: usize, a: *const f32, a_next: usize, b: RightPanels, out: TileOut) {
    // The second panel is read only for rows past MR (the caller's guarantee).
    let second = a.wrapping_add(a_next);
    // SAFETY: the caller's guarantees, for ROWS rows of the panels.
    unsafe { tile::<ROWS, 2, _>(k, Panels([a, second]), b, out) }
}

/// The [`super::packed::NarrowKernel`] for `rows` (1 to `WIDE_MR`) rows: a lone last
/// `B` panel, at the full AVX-512 width where the AVX2 kernel's 6×16 tiles ran at
/// half of it (the 3×3 stride-2 forward's 784-column groups end in one: its share of
/// the profile went from 2.2% to 1.3%, 20.20 → 20.15 ms, within the noise).
pub fn narrow_kernel(rows: usize) -> Option<NarrowKernel> {
    instance!(narrow::<rows> as NarrowKernel; 1 2 3 4 5 6 7 8 9 10 11 12)
}

/// See [`super::packed::NarrowKernel`]: the `ROWS×NR` product of the packed `A` panels
/// at `a` (rows past `MR` from the second, `a_next` floats on) and one `B` panel over
/// `k` steps, stored as `out` says.
///
/// # Safety
/// The CPU must support AVX-512F ([`available`]); the `A` panels holding the `ROWS`
/// rows and the `B` panel must hold `k` steps, and `out` a `ROWS×cols` block (`cols`
/// at most `NR`).
#[target_feature(enable = "avx512f")]
unsafe fn narrow<const ROWS: usize>(k: usize, a: *const f32, a_next: usize, b: RightPanels, out: TileOut) {
    // The second panel is read only for rows past MR (the caller's guarantee).
    let second = a.wrapping_add(a_next);
    // SAFETY: the caller's guarantees, for ROWS rows of the panels and one B panel.
    unsafe { tile::<ROWS, 1, _>(k, Panels([a, second]), b, TileOut { cols: out.cols.min(NR), ..out }) }
}

/// The [`super::packed::RowsKernel`] for `rows` (6 to `WIDE_MR`) rows of a row-major
/// `A` whose rows lie `lda` floats apart, for the strides with one: the rows are then
/// fixed offsets from one address, which each broadcast folds into its multiply-add.
/// With `lda` known only at run time, twelve row addresses do not fit in the general
/// registers beside the loop's own, and the compiler's spills made the kernel twice as
/// slow as packing. Tiles shorter than twelve rows let a block's rows split evenly
/// ([`super::packed`]'s row tiles) instead of leaving a few rows to a packed tail.
/// A [`RowsWidth::PanelAndHalf`] kernel needs AVX-512VL for its 8-lane masked stores.
pub fn rows_kernel(lda: usize, rows: usize, width: RowsWidth) -> Option<RowsKernel> {
    if width == RowsWidth::PanelAndHalf && !is_x86_feature_detected!("avx512vl") {
        return None;
    }
    match rows {
        6 => fixed_stride_rows::<6>(lda, width),
        7 => fixed_stride_rows::<7>(lda, width),
        8 => fixed_stride_rows::<8>(lda, width),
        9 => fixed_stride_rows::<9>(lda, width),
        10 => fixed_stride_rows::<10>(lda, width),
        11 => fixed_stride_rows::<11>(lda, width),
        WIDE_MR => fixed_stride_rows::<WIDE_MR>(lda, width),
        _ => None,
    }
}

/// [`rows_kernel`] for `ROWS` rows.
fn fixed_stride_rows<const ROWS: usize>(lda: usize, width: RowsWidth) -> Option<RowsKernel> {
    match width {
        RowsWidth::TwoPanels => {
            instance!(fixed_stride_kernel::<lda, ROWS> as RowsKernel; 16 32 48 64 96 128 192 256 384 512 768 1024 1536 2048 3072 4096)
        }
        RowsWidth::PanelAndHalf => {
            instance!(fixed_stride_and_half::<lda, ROWS> as RowsKernel; 16 32 48 64 96 128 192 256 384 512 768 1024 1536 2048 3072 4096)
        }
    }
}

/// See [`super::packed::RowsKernel`] and [`RowsWidth::PanelAndHalf`]: the
/// `ROWS×(NR + NR/2)` product of `ROWS` rows of a row-major `A` read in place and the
/// first `B` panel with the first half of the second, stored as `out` says (`cols` at
/// most `NR + NR/2`).
///
/// # Safety
/// The CPU must support AVX-512F and AVX-512VL; each of the `ROWS` rows must hold `k`
/// values, the first `B` panel `k` steps of `NR` values and the second `k` steps of
/// `NR/2`, and `out` a `ROWS×cols` block.
#[target_feature(enable = "avx512f,avx512vl")]
unsafe fn fixed_stride_and_half<const LDA: usize, const ROWS: usize>(
    k: usize,
    a: *const f32,
    b: RightPanels,
    out: TileOut,
) {
    // SAFETY: the caller's guarantees, for ROWS rows in place.
    unsafe { tile_and_half::<ROWS, _>(k, FixedStride::<LDA>(a), b, out) }
}

/// [`tile`] for one `B` panel and the first half of the next: `ROWS` 16-lane sums and
/// `ROWS` 8-lane ones, each `A` value broadcast once for both. On Zen 4 an 8-lane
/// multiply-add costs half a 16-lane one: 512 batched 50×32·32×50 products (their
/// last 2 columns in the second panel of a pair) went from 0.61–0.63 to 0.59 ms on two
/// threads, 1.26 to 1.20 ms on one.
///
/// # Safety
/// As for [`fixed_stride_and_half`], for `ROWS` rows of `a`.
#[target_feature(enable = "avx512f,avx512vl")]
#[inline]
unsafe fn tile_and_half<const ROWS: usize, A: LeftValues>(k: usize, a: A, b: RightPanels, out: TileOut) {
    let RightPanels { first: b, next: b_next, step: b_step } = b;
    let TileOut { ptr: c, row_stride: rsc, cols, accumulate, bias } = out;
    for r in 0..ROWS {
        // Start fetching the C tile now; the k loop hides the latency.
        _mm_prefetch::<_MM_HINT_T0>(c.wrapping_add(r * rsc).cast());
        _mm_prefetch::<_MM_HINT_T0>(c.wrapping_add(r * rsc + cols - 1).cast());
    }
    let mut full = [_mm512_setzero_ps(); ROWS];
    let mut half = [_mm256_setzero_ps(); ROWS];
    let step = |full: &mut [__m512; ROWS], half: &mut [__m256; ROWS], offset: usize| {
        // SAFETY: the caller guarantees ROWS values of A, NR of the first B panel and
        // NR/2 of the second at this step.
        unsafe {
            let first = _mm512_loadu_ps(b.add(offset * b_step));
            let second = _mm256_loadu_ps(b.add(b_next + offset * b_step));
            for r in 0..ROWS {
                let ar = _mm512_set1_ps(*a.at(r, offset));
                full[r] = _mm512_fmadd_ps(ar, first, full[r]);
                half[r] = _mm256_fmadd_ps(_mm512_castps512_ps256(ar), second, half[r]);
            }
        }
    };
    for p in (0..k / 2 * 2).step_by(2) {
        step(&mut full, &mut half, p);
        step(&mut full, &mut half, p + 1);
    }
    if k % 2 == 1 {
        step(&mut full, &mut half, k - 1);
    }
    let full_lanes = ((1u32 << cols.min(NR)) - 1) as __mmask16;
    let half_lanes = ((1u32 << cols.saturating_sub(NR).min(NR / 2)) - 1) as __mmask8;
    // SAFETY: the caller's `cols` bias values; masked-off lanes are not read.
    let bias = (!bias.is_null()).then(|| unsafe {
        (_mm512_maskz_loadu_ps(full_lanes, bias), _mm256_maskz_loadu_ps(half_lanes, bias.wrapping_add(NR)))
    });
    for r in 0..ROWS {
        let (mut first, mut second) = (full[r], half[r]);
        // SAFETY: the `cols` columns of row `r` of the caller's block; masked-off lanes
        // are neither read nor written.
        unsafe {
            let at = c.add(r * rsc);
            if accumulate {
                first = _mm512_add_ps(first, _mm512_maskz_loadu_ps(full_lanes, at));
                second = _mm256_add_ps(second, _mm256_maskz_loadu_ps(half_lanes, at.wrapping_add(NR)));
            }
            if let Some((bias_first, bias_second)) = bias {
                first = _mm512_add_ps(first, bias_first);
                second = _mm256_add_ps(second, bias_second);
            }
            _mm512_mask_storeu_ps(at, full_lanes, first);
            _mm256_mask_storeu_ps(at.wrapping_add(NR), half_lanes, second);
        }
    }
}

/// See [`super::packed::RowsKernel`]: the `ROWS×2NR` product of `ROWS` rows of a
/// row-major `A` read in place (row `r` at `a + r·LDA`, `k` consecutive values) and two
/// `B` panels, stored as `out` says.
///
/// # Safety
/// The CPU must support AVX-512F ([`available`]); each of the `ROWS` rows must hold
/// `k` values, both `B` panels `k` steps, and `out` a `ROWS×cols` block.
#[target_feature(enable = "avx512f")]
unsafe fn fixed_stride_kernel<const LDA: usize, const ROWS: usize>(
    k: usize,
    a: *const f32,
    b: RightPanels,
    out: TileOut,
) {
    // SAFETY: the caller's guarantees, for ROWS rows in place.
    unsafe { tile::<ROWS, 2, _>(k, FixedStride::<LDA>(a), b, out) }
}

/// Where a kernel reads the value of `A` in row `r` of its tile at step `p`.
trait LeftValues: Copy {
    /// The address of that value.
    ///
    /// # Safety
    /// `(r, p)` must lie inside the caller's operand.
    unsafe fn at(self, r: usize, p: usize) -> *const f32;
}

/// Two packed `A` panels: rows past `MR` come from the second.
#[derive(Clone, Copy)]
struct Panels([*const f32; 2]);

impl LeftValues for Panels {
    #[inline(always)]
    unsafe fn at(self, r: usize, p: usize) -> *const f32 {
        // SAFETY: inside the caller's panels.
        unsafe { self.0[r / MR].add(p * MR + r % MR) }
    }
}

/// Rows of a row-major `A` read in place, `LDA` floats apart.
#[derive(Clone, Copy)]
struct FixedStride<const LDA: usize>(*const f32);

impl<const LDA: usize> LeftValues for FixedStride<LDA> {
    #[inline(always)]
    unsafe fn at(self, r: usize, p: usize) -> *const f32 {
        // SAFETY: inside the caller's rows.
        unsafe { self.0.add(r * LDA + p) }
    }
}

/// The `ROWS×(PANELS·NR)` block of `C` (`ROWS` up to `WIDE_MR`, one or two `B`
/// panels) from the `A` values `a` and the `B` panels `b` (packed or rows in place), in `PANELS·ROWS` registers for the whole `k` loop.
///
/// # Safety
/// As for [`kernel`], for `ROWS` rows of `a` and `PANELS` panels.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn tile<const ROWS: usize, const PANELS: usize, A: LeftValues>(
    k: usize,
    a: A,
    b: RightPanels,
    out: TileOut,
) {
    let RightPanels { first: b, next: b_next, step: b_step } = b;
    let TileOut { ptr: c, row_stride: rsc, cols, accumulate, bias } = out;
    for r in 0..ROWS {
        // Start fetching the C tile now; the k loop hides the latency.
        _mm_prefetch::<_MM_HINT_T0>(c.wrapping_add(r * rsc).cast());
        _mm_prefetch::<_MM_HINT_T0>(c.wrapping_add(r * rsc + cols - 1).cast());
    }
    let mut acc = [[_mm512_setzero_ps(); PANELS]; ROWS];
    let step = |acc: &mut [[__m512; PANELS]; ROWS], offset: usize| {
        // SAFETY: the caller guarantees ROWS values of A and NR of each B panel at
        // this step.
        unsafe {
            let b: [__m512; PANELS] =
                std::array::from_fn(|p| _mm512_loadu_ps(b.add(p * b_next + offset * b_step)));
            for (r, row) in acc.iter_mut().enumerate() {
                let ar = _mm512_set1_ps(*a.at(r, offset));
                for (sum, b) in row.iter_mut().zip(b) {
                    *sum = _mm512_fmadd_ps(ar, b, *sum);
                }
            }
        }
    };
    for p in (0..k / 2 * 2).step_by(2) {
        step(&mut acc, p);
        step(&mut acc, p + 1);
    }
    if k % 2 == 1 {
        step(&mut acc, k - 1);
    }
    // Lanes of each panel's columns that hold the tile's columns.
    let lanes: [__mmask16; PANELS] = std::array::from_fn(|p| {
        let count = cols.saturating_sub(p * NR).min(NR);
        (((1u32 << count) - 1) & 0xFFFF) as __mmask16
    });
    // SAFETY: the caller's `cols` bias values; masked-off lanes are not read.
    let bias: Option<[__m512; PANELS]> = (!bias.is_null()).then(|| {
        std::array::from_fn(|p| unsafe { _mm512_maskz_loadu_ps(lanes[p], bias.wrapping_add(p * NR)) })
    });
    let whole = cols >= PANELS * NR;
    for (r, sums) in acc.into_iter().enumerate() {
        for (p, mut sum) in sums.into_iter().enumerate() {
            // SAFETY: the `cols` columns of row `r` of the caller's block; masked-off
            // lanes are neither read nor written.
            unsafe {
                let at = c.add(r * rsc).wrapping_add(p * NR);
                if accumulate {
                    let old = if whole { _mm512_loadu_ps(at) } else { _mm512_maskz_loadu_ps(lanes[p], at) };
                    sum = _mm512_add_ps(sum, old);
                }
                if let Some(bias) = bias {
                    sum = _mm512_add_ps(sum, bias[p]);
                }
                if whole {
                    _mm512_storeu_ps(at, sum);
                } else {
                    _mm512_mask_storeu_ps(at, lanes[p], sum);
                }
            }
        }
    }
}
