//! The AVX-512 micro-kernels: a 12×32 block of `C` from two consecutive packed `A`
//! panels (6 rows each) and two consecutive packed `B` panels (16 columns each), held
//! in twenty-four 16-lane registers for the whole `k` loop, and a 6×32 one (one `A`
//! panel, twelve registers) for the rows left below the last 12-row tile. They read the
//! same packed layout as the 6×16 kernels, so packing (and the convolutions that pack
//! their own panels) is shared; tiles narrower than 32 columns at the edges of a block
//! go to the AVX2 kernel, which every AVX-512 CPU also runs.
//!
//! Each entry of `C` is the same chain of fused multiply-adds, in the same order, as in
//! the AVX2 kernel, so both kernels give bit-identical results.

use std::arch::x86_64::*;

use super::{MR, NR};

/// Rows of `C` one call produces: two `A` panels.
pub const WIDE_MR: usize = 2 * MR;
/// Columns of `C` one call produces: two `B` panels.
pub const WIDE_NR: usize = 2 * NR;

/// Whether this CPU can run [`kernel`] and [`pair_kernel`] (and the AVX2 kernel used at
/// the edges).
pub fn available() -> bool {
    is_x86_feature_detected!("avx512f") && super::avx2::available()
}

/// See [`super::packed::WideKernel`]: the `WIDE_MR×WIDE_NR` product of two packed `A`
/// panels (the second `a_next` floats after the first) and two packed `B` panels (the
/// second `b_next` floats after the first) over `k` steps, stored into `c` (row stride
/// `rsc`), added to what is there when `accumulate`.
///
/// # Safety
/// The CPU must support AVX-512F ([`available`]); each of the four panels must hold
/// `k` steps, and `c` a `WIDE_MR×WIDE_NR` block with row stride `rsc`.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn kernel(
    k: usize,
    a: *const f32,
    a_next: usize,
    b: *const f32,
    b_next: usize,
    c: *mut f32,
    rsc: usize,
    accumulate: bool,
) {
    // SAFETY: the caller's guarantees, for two A panels.
    unsafe { rows_by_32::<WIDE_MR>(k, [a, a.add(a_next)], b, b_next, c, rsc, accumulate) }
}

/// See [`super::packed::PairKernel`]: the `MR×WIDE_NR` product of one packed `A` panel
/// and two packed `B` panels (the second `b_next` floats after the first) over `k`
/// steps, stored into `c` (row stride `rsc`), added to what is there when `accumulate`.
///
/// # Safety
/// The CPU must support AVX-512F ([`available`]); the `A` panel and both `B` panels must
/// hold `k` steps, and `c` an `MR×WIDE_NR` block with row stride `rsc`.
#[target_feature(enable = "avx512f")]
pub unsafe fn pair_kernel(
    k: usize,
    a: *const f32,
    b: *const f32,
    b_next: usize,
    c: *mut f32,
    rsc: usize,
    accumulate: bool,
) {
    // SAFETY: the caller's guarantees, for one A panel (rows past MR are never read).
    unsafe { rows_by_32::<MR>(k, [a, a], b, b_next, c, rsc, accumulate) }
}

/// The `ROWS×WIDE_NR` block of `C` (`ROWS` is `MR` or `WIDE_MR`) from the `A` panels
/// `a` (rows past `MR` come from the second) and two `B` panels, in `2·ROWS` registers
/// for the whole `k` loop.
///
/// # Safety
/// As for [`kernel`], for `ROWS` rows.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn rows_by_32<const ROWS: usize>(
    k: usize,
    a: [*const f32; 2],
    b: *const f32,
    b_next: usize,
    c: *mut f32,
    rsc: usize,
    accumulate: bool,
) {
    for r in 0..ROWS {
        // Start fetching the C tile now; the k loop hides the latency.
        // SAFETY: prefetching never faults; the addresses are the caller's tile.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(c.add(r * rsc).cast());
            _mm_prefetch::<_MM_HINT_T0>(c.add(r * rsc + WIDE_NR - 1).cast());
        }
    }
    let mut acc = [[_mm512_setzero_ps(); 2]; ROWS];
    let step = |acc: &mut [[__m512; 2]; ROWS], offset: usize| {
        // SAFETY: the caller guarantees MR values of the A panels and NR of both B
        // panels at this step.
        unsafe {
            let b0 = _mm512_loadu_ps(b.add(offset * NR));
            let b1 = _mm512_loadu_ps(b.add(b_next + offset * NR));
            for (r, row) in acc.iter_mut().enumerate() {
                let ar = _mm512_set1_ps(*a[r / MR].add(offset * MR + r % MR));
                row[0] = _mm512_fmadd_ps(ar, b0, row[0]);
                row[1] = _mm512_fmadd_ps(ar, b1, row[1]);
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
    for (r, [lo, hi]) in acc.into_iter().enumerate() {
        // SAFETY: row `r` of the caller's ROWS×WIDE_NR block.
        unsafe {
            let row = c.add(r * rsc);
            let (lo, hi) = if accumulate {
                (_mm512_add_ps(lo, _mm512_loadu_ps(row)), _mm512_add_ps(hi, _mm512_loadu_ps(row.add(NR))))
            } else {
                (lo, hi)
            };
            _mm512_storeu_ps(row, lo);
            _mm512_storeu_ps(row.add(NR), hi);
        }
    }
}
