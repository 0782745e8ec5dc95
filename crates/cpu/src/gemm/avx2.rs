//! The AVX2 + FMA micro-kernel: a 6×16 block of `C` from packed panels of `A` (6 rows)
//! and `B` (16 columns), held in twelve 8-lane registers for the whole `k` loop.

use std::arch::x86_64::*;

use super::{MR, NR};

/// Whether this CPU can run [`kernel`].
pub fn available() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}

/// See [`super::packed::MicroKernel`]: the `MR×NR` product of a packed `A` panel (`k`
/// columns of `MR` values) and a packed `B` panel (`k` rows of `NR` values), stored into
/// `c` (row stride `rsc`), added to what is there when `accumulate`.
///
/// # Safety
/// The CPU must support AVX2 and FMA ([`available`]); `a` must hold `k·MR` values, `b`
/// `k·NR`, and `c` an `MR×NR` block with row stride `rsc`.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn kernel(k: usize, a: *const f32, b: *const f32, c: *mut f32, rsc: usize, accumulate: bool) {
    for r in 0..MR {
        // Start fetching the C tile now; the k loop hides the latency.
        // SAFETY: prefetching never faults; the addresses are the caller's tile.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(c.add(r * rsc).cast());
            _mm_prefetch::<_MM_HINT_T0>(c.add(r * rsc + NR - 1).cast());
        }
    }
    let mut acc = [_mm256_setzero_ps(); 2 * MR];
    let step = |acc: &mut [__m256; 2 * MR], a: *const f32, b: *const f32| {
        // SAFETY: the caller guarantees MR values of `a` and NR of `b` at this step.
        unsafe {
            let b0 = _mm256_loadu_ps(b);
            let b1 = _mm256_loadu_ps(b.add(8));
            for r in 0..MR {
                let ar = _mm256_broadcast_ss(&*a.add(r));
                acc[2 * r] = _mm256_fmadd_ps(ar, b0, acc[2 * r]);
                acc[2 * r + 1] = _mm256_fmadd_ps(ar, b1, acc[2 * r + 1]);
            }
        }
    };
    let (mut a, mut b) = (a, b);
    for _ in 0..k / 4 {
        // SAFETY: four of the caller's `k` steps.
        unsafe {
            step(&mut acc, a, b);
            step(&mut acc, a.add(MR), b.add(NR));
            step(&mut acc, a.add(2 * MR), b.add(2 * NR));
            step(&mut acc, a.add(3 * MR), b.add(3 * NR));
            a = a.add(4 * MR);
            b = b.add(4 * NR);
        }
    }
    for _ in 0..k % 4 {
        step(&mut acc, a, b);
        // SAFETY: still within the caller's `k` steps.
        unsafe {
            a = a.add(MR);
            b = b.add(NR);
        }
    }
    for r in 0..MR {
        // SAFETY: row `r` of the caller's MR×NR block.
        unsafe {
            let row = c.add(r * rsc);
            let (mut lo, mut hi) = (acc[2 * r], acc[2 * r + 1]);
            if accumulate {
                lo = _mm256_add_ps(lo, _mm256_loadu_ps(row));
                hi = _mm256_add_ps(hi, _mm256_loadu_ps(row.add(8)));
            }
            _mm256_storeu_ps(row, lo);
            _mm256_storeu_ps(row.add(8), hi);
        }
    }
}
