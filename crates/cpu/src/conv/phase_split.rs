//! A strided convolution's input channel plane, zero-padded and split by stride phase
//! (the forward's [`super::patches::InputLayout::Phases`]): phase plane `(a, b)` holds
//! the padded elements `(y, x)` with `y % stride_h = a` and `x % stride_w = b`, so
//! consecutive output pixels read consecutive elements. For stride 2 on AVX-512 each
//! input row is read once for both of its phase rows: every 16 elements of the two come
//! from two masked loads (lanes outside the row read as zero) and two permutes, where
//! the portable loop copies each phase row separately in short runs (the 3×3 stride-2
//! forward of 128 images of 64 channels at 28×28, 2 threads: 21.12 → 20.87 ms; the
//! same pairing through a call per row was slower than the portable loop, 21.40 ms).

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use kiln_tensor::Conv2dGeometry;

use crate::gemm::GemmKernel;

/// How one channel plane is padded and split.
#[derive(Clone, Copy, Debug)]
pub struct PhaseSplit {
    /// Input rows and columns.
    pub input: (usize, usize),
    /// Zeros added above and below, left and right.
    pub padding: (usize, usize),
    /// Phases down and across (`(1, 1)` pads only).
    pub stride: (usize, usize),
    /// Kernel rows and columns: phases no tap reads (a kernel smaller than its
    /// stride) stay unwritten.
    pub kernel: (usize, usize),
    /// Rows and columns of one phase plane.
    pub phase: (usize, usize),
}

impl PhaseSplit {
    /// The split of convolution `g`'s input planes into `stride` phases.
    pub fn new(g: &Conv2dGeometry, stride: (usize, usize)) -> Self {
        let (height, width) = (g.in_h + 2 * g.padding.0, g.in_w + 2 * g.padding.1);
        PhaseSplit {
            input: (g.in_h, g.in_w),
            padding: g.padding,
            stride,
            kernel: (g.kernel_h, g.kernel_w),
            phase: (height.div_ceil(stride.0), width.div_ceil(stride.1)),
        }
    }

    /// Elements of one split plane: all its phase planes.
    pub fn len(&self) -> usize {
        self.stride.0 * self.stride.1 * self.phase.0 * self.phase.1
    }

    /// Writes the phase planes of the channel plane `source` into `out`, every element
    /// a tap reads (zero where it is padding or past the padded plane), so `out` needs
    /// no zeroing first.
    pub fn split(&self, splitter: Splitter, source: &[f32], out: &mut [f32]) {
        let (source, out) = (&source[..self.input.0 * self.input.1], &mut out[..self.len()]);
        match splitter {
            // SAFETY: `detect` chooses AVX-512 only where the CPU runs it; the slices
            // are as long as the split needs (cut above).
            #[cfg(target_arch = "x86_64")]
            Splitter::Avx512 if self.stride == (2, 2) && self.kernel.0 >= 2 && self.kernel.1 >= 2 => unsafe {
                self.split_in_pairs_avx512(source, out)
            },
            _ => self.split_by_phase(source, out),
        }
    }

    /// Input row `y` of padded row `row` (`None` for a row of padding).
    #[inline(always)]
    fn input_row<'s>(&self, source: &'s [f32], row: usize) -> Option<&'s [f32]> {
        let y = row.checked_sub(self.padding.0).filter(|&y| y < self.input.0)?;
        Some(&source[y * self.input.1..][..self.input.1])
    }

    /// The portable split: each phase plane row by row.
    fn split_by_phase(&self, source: &[f32], out: &mut [f32]) {
        let ((sh, sw), (phase_h, phase_w)) = (self.stride, self.phase);
        for a in 0..sh.min(self.kernel.0) {
            for b in 0..sw.min(self.kernel.1) {
                let plane = &mut out[(a * sw + b) * phase_h * phase_w..][..phase_h * phase_w];
                for (py, row) in plane.chunks_exact_mut(phase_w).enumerate() {
                    phase_row(self.input_row(source, py * sh + a), self.padding.1, sw, b, row);
                }
            }
        }
    }

    /// Stride `(2, 2)` with every phase read: both phase rows of an input row from the
    /// same loads. Rows are stored as whole vectors wherever the rest of their phase
    /// plane (written after them) takes the spill: masked stores are slow on AMD's cores.
    ///
    /// # Safety
    /// The CPU must run AVX-512F; `source` and `out` must be as [`PhaseSplit::split`]
    /// cuts them.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn split_in_pairs_avx512(&self, source: &[f32], out: &mut [f32]) {
        let (phase_h, phase_w) = self.phase;
        let phase_plane = phase_h * phase_w;
        let even_lanes = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let odd_lanes = _mm512_add_epi32(even_lanes, _mm512_set1_epi32(1));
        let pad = self.padding.1 as isize;
        for a in 0..2 {
            for py in 0..phase_h {
                let row = self.input_row(source, 2 * py + a).unwrap_or(&[]);
                let len = row.len() as isize;
                // Lanes `l` of a 16-float load at `from` with `0 <= from + l < len`.
                let inside = |from: isize| -> __mmask16 {
                    let end = (len - from).clamp(0, LANES as isize);
                    let first = (-from).clamp(0, end);
                    (((1u32 << end) - 1) & !((1u32 << first) - 1)) as __mmask16
                };
                let start = (2 * a * phase_h + py) * phase_w;
                // Both rows may spill up to the end of their phase plane.
                let room = (phase_h - py) * phase_w;
                for first in (0..phase_w).step_by(LANES) {
                    let from = 2 * first as isize - pad;
                    // SAFETY: only the lanes inside `row` are read (`inside`); the
                    // addresses of the others are formed with wrapping arithmetic and
                    // never dereferenced.
                    let (low, high) = unsafe {
                        let at = row.as_ptr().wrapping_offset(from);
                        (
                            _mm512_maskz_loadu_ps(inside(from), at),
                            _mm512_maskz_loadu_ps(inside(from + LANES as isize), at.wrapping_add(LANES)),
                        )
                    };
                    let even = _mm512_permutex2var_ps(low, even_lanes, high);
                    let odd = _mm512_permutex2var_ps(low, odd_lanes, high);
                    // SAFETY: phase plane `(a, 0)` and `(a, 1)` rows `py` lie at `start`
                    // and `start + phase_plane` in `out`, `room` elements before their
                    // planes end: whole vectors only where they fit, else the row's
                    // lanes.
                    unsafe {
                        let to = out.as_mut_ptr().add(start + first);
                        if first + LANES <= room {
                            _mm512_storeu_ps(to, even);
                            _mm512_storeu_ps(to.add(phase_plane), odd);
                        } else {
                            let lanes = ((1u32 << (phase_w - first).min(LANES)) - 1) as __mmask16;
                            _mm512_mask_storeu_ps(to, lanes, even);
                            _mm512_mask_storeu_ps(to.add(phase_plane), lanes, odd);
                        }
                    }
                }
            }
        }
    }
}

/// Floats in one AVX-512 register.
#[cfg(target_arch = "x86_64")]
const LANES: usize = 16;

/// How [`PhaseSplit::split`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Splitter {
    /// Stride 2 in pairs of phase rows on AVX-512 (others as `Portable`).
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// Each phase row on its own.
    Portable,
}

impl Splitter {
    /// AVX-512 where the GEMM kernel choice is AVX-512, else the portable loop.
    pub fn detect() -> Self {
        match GemmKernel::detect() {
            #[cfg(target_arch = "x86_64")]
            GemmKernel::Avx512 => Splitter::Avx512,
            _ => Splitter::Portable,
        }
    }

    /// Every splitter this CPU runs.
    #[cfg(test)]
    fn available() -> Vec<Self> {
        match Splitter::detect() {
            Splitter::Portable => vec![Splitter::Portable],
            #[cfg(target_arch = "x86_64")]
            Splitter::Avx512 => vec![Splitter::Portable, Splitter::Avx512],
        }
    }
}

/// Fills `row` with phase `phase` of `source` zero-padded by `pad` on the left and as
/// much as `row` needs on the right: `row[p]` is padded element `p·step + phase`. A
/// row of padding only (`None`) is all zeros.
#[inline(always)]
fn phase_row(source: Option<&[f32]>, pad: usize, step: usize, phase: usize, row: &mut [f32]) {
    let Some(source) = source else {
        row.fill(0.0);
        return;
    };
    // Phase elements `first..end` lie inside the unpadded row.
    let first = pad.saturating_sub(phase).div_ceil(step);
    let end = (pad + source.len()).saturating_sub(phase).div_ceil(step).min(row.len());
    if first >= end {
        row.fill(0.0);
        return;
    }
    row[..first].fill(0.0);
    row[end..].fill(0.0);
    every_nth(&source[first * step + phase - pad..], step, &mut row[first..end]);
}

/// Fills `target` with every `step`-th element of `source` from the first: a plain copy
/// for step 1, and for step 2 pairs the compiler turns into vector shuffles.
#[inline(always)]
pub fn every_nth(source: &[f32], step: usize, target: &mut [f32]) {
    let source = &source[..(target.len() - 1) * step + 1];
    match step {
        1 => target.copy_from_slice(source),
        2 => {
            let (last, pairs) = target.split_last_mut().expect("a non-empty row");
            pairs.iter_mut().zip(source.chunks_exact(2)).for_each(|(o, pair)| *o = pair[0]);
            *last = source[source.len() - 1];
        }
        _ => target.iter_mut().enumerate().for_each(|(i, o)| *o = source[i * step]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every splitter, over planes whose rows take one or two vectors (or part of
    /// one), with padding from none to three, strides 1 to 3 and kernels smaller than
    /// their stride: each element it writes is the padded plane's, and it writes every
    /// element of the phases a tap reads.
    #[test]
    fn phase_planes_hold_the_padded_plane() {
        for splitter in Splitter::available() {
            for (in_h, in_w) in [(1, 1), (3, 5), (7, 14), (6, 29), (5, 33), (4, 40)] {
                let source: Vec<f32> = (0..in_h * in_w).map(|i| i as f32 + 1.0).collect();
                for pad in 0..4 {
                    for (stride, kernel) in [(2, 3), (2, 2), (2, 1), (1, 3), (3, 3), (3, 2)] {
                        let split = PhaseSplit {
                            input: (in_h, in_w),
                            padding: (pad, pad),
                            stride: (stride, stride),
                            kernel: (kernel, kernel),
                            phase: ((in_h + 2 * pad).div_ceil(stride), (in_w + 2 * pad).div_ceil(stride)),
                        };
                        let mut out = vec![f32::NAN; split.len()];
                        split.split(splitter, &source, &mut out);
                        let padded = |y: usize, x: usize| {
                            let inside = (pad..pad + in_h).contains(&y) && (pad..pad + in_w).contains(&x);
                            if inside { source[(y - pad) * in_w + x - pad] } else { 0.0 }
                        };
                        let (phase_h, phase_w) = split.phase;
                        for (i, &value) in out.iter().enumerate() {
                            let (phase, within) = (i / (phase_h * phase_w), i % (phase_h * phase_w));
                            let (a, b) = (phase / stride, phase % stride);
                            let (y, x) = ((within / phase_w) * stride + a, (within % phase_w) * stride + b);
                            let read = a < kernel && b < kernel;
                            let context = format!(
                                "{splitter:?} {in_h}×{in_w} pad {pad} stride {stride} kernel {kernel}: phase ({a}, {b}) element ({y}, {x})"
                            );
                            if read {
                                assert_eq!(value, padded(y, x), "{context}");
                            } else {
                                assert!(value.is_nan(), "{context} was written");
                            }
                        }
                    }
                }
            }
        }
    }
}
