//! The transforms of the Winograd algorithms Kiln runs: F(4×4, 3×3) and F(3×3, 5×5),
//! as constant matrices, and the small matrix–vector products the convolution applies
//! them with. The products are written once for every algorithm; each algorithm is a
//! type whose transforms are an associated constant ([`Algorithm::TRANSFORMS`]), so in
//! the code generated for it the matrices are compile-time constants, the loops have
//! constant bounds, and the compiler unrolls them and drops every multiplication by 0
//! or ±1: each algorithm runs its own straight-line transform.

use std::ops::{Add, Mul, Sub};

/// The transforms of F(M×M, R×R) on tiles of `N = M + R − 1` (Lavin & Gray, 2016):
/// a kernel `g` becomes `U = G·g·Gᵀ`, an input tile `d` becomes `V = Bᵀ·d·B`, and the
/// output block is `Y = Aᵀ·(U ⊙ V)·A`.
pub struct Transforms<const N: usize, const M: usize, const R: usize> {
    /// `Bᵀ`, `N×N`.
    pub input: [[f32; N]; N],
    /// `G`, `N×R`.
    pub kernel: [[f32; R]; N],
    /// `Aᵀ`, `M×N`.
    pub output: [[f32; N]; M],
}

/// A Winograd algorithm on tiles of `N` pixels for kernels of `R`, producing `M×M`
/// output blocks.
pub trait Algorithm<const N: usize, const M: usize, const R: usize> {
    /// Its transforms.
    const TRANSFORMS: Transforms<N, M, R>;
}

/// F(4×4, 3×3) (see [`F4X3`]).
pub struct F4x3;

impl Algorithm<6, 4, 3> for F4x3 {
    const TRANSFORMS: Transforms<6, 4, 3> = F4X3;
}

/// F(3×3, 5×5) (see [`F3X5`]).
pub struct F3x5;

impl Algorithm<7, 3, 5> for F3x5 {
    const TRANSFORMS: Transforms<7, 3, 5> = F3X5;
}

/// The transforms of F(3×3, 5×5), interpolating at 0, 1, −1, 2, −2, 1/2 and ∞
/// (Toom–Cook, derived and checked with sympy; the rows of `Bᵀ` whose coefficients had
/// fractions scaled to integers and their `G` rows divided by as much, so the fractions
/// sit in the kernel transform, which runs once per call): 7×7 tiles give 3×3 outputs,
/// 49 products for 9 outputs where the direct convolution needs 225 (4.6× less GEMM
/// work; F(2×2, 5×5), which Kiln ran before, needs 36 per 4: 2.78×).
const F3X5: Transforms<7, 3, 5> = Transforms {
    input: [
        [-4.0, 8.0, 5.0, -10.0, -1.0, 2.0, 0.0],
        [0.0, 4.0, -4.0, -9.0, 1.0, 2.0, 0.0],
        [0.0, -4.0, 12.0, -7.0, -3.0, 2.0, 0.0],
        [0.0, 2.0, -3.0, -4.0, 3.0, 2.0, 0.0],
        [0.0, -2.0, 5.0, 0.0, -5.0, 2.0, 0.0],
        [0.0, 4.0, 0.0, -5.0, 0.0, 1.0, 0.0],
        [0.0, -4.0, 8.0, 5.0, -10.0, -1.0, 2.0],
    ],
    kernel: [
        [-1.0 / 4.0, 0.0, 0.0, 0.0, 0.0],
        [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
        [1.0 / 18.0, -1.0 / 18.0, 1.0 / 18.0, -1.0 / 18.0, 1.0 / 18.0],
        [1.0 / 72.0, 1.0 / 36.0, 1.0 / 18.0, 1.0 / 9.0, 2.0 / 9.0],
        [-1.0 / 120.0, 1.0 / 60.0, -1.0 / 30.0, 1.0 / 15.0, -2.0 / 15.0],
        [32.0 / 45.0, 16.0 / 45.0, 8.0 / 45.0, 4.0 / 45.0, 2.0 / 45.0],
        [0.0, 0.0, 0.0, 0.0, 1.0 / 2.0],
    ],
    output: [
        [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
        [0.0, 1.0, -1.0, 2.0, -2.0, 1.0 / 2.0, 0.0],
        [0.0, 1.0, 1.0, 4.0, 4.0, 1.0 / 4.0, 1.0],
    ],
};

/// The transforms of F(4×4, 3×3) (Lavin & Gray's), interpolating at 0, 1, −1, 2, −2
/// and ∞: 6×6 tiles give 4×4 outputs, 36
/// products for 16 outputs where F(2×2, 3×3) needs 64 (1.78× less GEMM work, and fewer
/// transformed values per output). The larger coefficients (up to 8 in `Aᵀ`) cost
/// precision; the tests bound it.
const F4X3: Transforms<6, 4, 3> = Transforms {
    input: [
        [4.0, 0.0, -5.0, 0.0, 1.0, 0.0],
        [0.0, -4.0, -4.0, 1.0, 1.0, 0.0],
        [0.0, 4.0, -4.0, -1.0, 1.0, 0.0],
        [0.0, -2.0, -1.0, 2.0, 1.0, 0.0],
        [0.0, 2.0, -1.0, -2.0, 1.0, 0.0],
        [0.0, 4.0, 0.0, -5.0, 0.0, 1.0],
    ],
    kernel: [
        [1.0 / 4.0, 0.0, 0.0],
        [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
        [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
        [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
        [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
        [0.0, 0.0, 1.0],
    ],
    output: [
        [1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
        [0.0, 1.0, -1.0, 2.0, -2.0, 0.0],
        [0.0, 1.0, 1.0, 4.0, 4.0, 0.0],
        [0.0, 1.0, -1.0, 8.0, -8.0, 1.0],
    ],
};

/// What the transforms compute on: one value, or [`Lanes`] of several tiles at once.
pub trait Value: Copy + Add<Output = Self> + Sub<Output = Self> + Mul<f32, Output = Self> {
    /// −0, the additive identity (`−0 + v = v` for every `v`, unlike +0, so the
    /// compiler drops the first addition of a sum that starts there).
    const NEGATIVE_ZERO: Self;
}

impl Value for f32 {
    const NEGATIVE_ZERO: Self = -0.0;
}

/// Values of [`LANES`] tiles side by side: the transforms run on all of them with each
/// operation, which the compiler turns into vector instructions.
#[derive(Clone, Copy, Debug)]
pub struct Lanes(pub [f32; LANES]);

/// Tiles a [`Lanes`] holds (one AVX-512 register, two AVX2 ones).
pub const LANES: usize = 16;

impl Lanes {
    /// Zero in every lane.
    pub const ZERO: Lanes = Lanes([0.0; LANES]);

    /// The first `LANES` values of `values`, or all of them followed by zeros when
    /// there are fewer.
    #[inline(always)]
    pub fn load(values: &[f32]) -> Self {
        if let Some(whole) = values.first_chunk::<LANES>() {
            return Lanes(*whole);
        }
        let mut lanes = [0.0; LANES];
        let len = values.len().min(LANES);
        lanes[..len].copy_from_slice(&values[..len]);
        Lanes(lanes)
    }

    /// `f` applied lane by lane.
    #[inline(always)]
    fn map(self, other: Lanes, f: impl Fn(f32, f32) -> f32) -> Self {
        let mut out = self.0;
        for (o, b) in out.iter_mut().zip(other.0) {
            *o = f(*o, b);
        }
        Lanes(out)
    }
}

impl Add for Lanes {
    type Output = Lanes;

    #[inline(always)]
    fn add(self, other: Lanes) -> Lanes {
        self.map(
            other,
            #[inline(always)]
            |a, b| a + b,
        )
    }
}

impl Sub for Lanes {
    type Output = Lanes;

    #[inline(always)]
    fn sub(self, other: Lanes) -> Lanes {
        self.map(
            other,
            #[inline(always)]
            |a, b| a - b,
        )
    }
}

impl Mul<f32> for Lanes {
    type Output = Lanes;

    #[inline(always)]
    fn mul(self, c: f32) -> Lanes {
        self.map(
            self,
            #[inline(always)]
            |a, _| a * c,
        )
    }
}

impl Value for Lanes {
    const NEGATIVE_ZERO: Self = Lanes([-0.0; LANES]);
}

/// `matrix · x`.
#[inline(always)]
pub fn times<T: Value, const P: usize, const Q: usize>(matrix: &[[f32; Q]; P], x: &[T; Q]) -> [T; P] {
    gather(
        #[inline(always)]
        |i| {
            let mut sum = T::NEGATIVE_ZERO;
            for j in 0..Q {
                sum = accumulate(sum, matrix[i][j], x[j]);
            }
            sum
        },
    )
}

/// `matrixᵀ · x`.
#[inline(always)]
pub fn times_transposed<T: Value, const P: usize, const Q: usize>(
    matrix: &[[f32; Q]; P],
    x: &[T; P],
) -> [T; Q] {
    gather(
        #[inline(always)]
        |j| {
            let mut sum = T::NEGATIVE_ZERO;
            for i in 0..P {
                sum = accumulate(sum, matrix[i][j], x[i]);
            }
            sum
        },
    )
}

/// The array of `value(i)` for every index (`P ≥ 1`): `std::array::from_fn` with a
/// plain loop, which the compiler inlines and unrolls into the transforms (it keeps
/// `from_fn`'s closures as calls, and a call per element costs more than the
/// transform's arithmetic).
#[inline(always)]
pub fn gather<T: Copy, const P: usize>(value: impl Fn(usize) -> T) -> [T; P] {
    let mut out = [value(0); P];
    for (i, slot) in out.iter_mut().enumerate().skip(1) {
        *slot = value(i);
    }
    out
}

/// `sum + c·v`, without the multiplication when `c` is 0 or ±1.
#[inline(always)]
fn accumulate<T: Value>(sum: T, c: f32, v: T) -> T {
    if c == 0.0 {
        sum
    } else if c == 1.0 {
        sum + v
    } else if c == -1.0 {
        sum - v
    } else {
        sum + v * c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 1-D identity every algorithm rests on: `Aᵀ·((G·g) ⊙ (Bᵀ·d))` is the
    /// correlation of `d` with `g`, checked in float64 on integer data.
    fn correlates<const N: usize, const M: usize, const R: usize>(t: &Transforms<N, M, R>) {
        let d: [f32; N] = std::array::from_fn(|i| (i as f32 * 3.0 + 1.0) % 7.0 - 3.0);
        let g: [f32; R] = std::array::from_fn(|i| (i as f32 * 5.0 + 2.0) % 9.0 - 4.0);
        let (u, v) = (times(&t.kernel, &g), times(&t.input, &d));
        let product: [f32; N] = std::array::from_fn(|i| u[i] * v[i]);
        let y = times(&t.output, &product);
        for (i, got) in y.iter().enumerate() {
            let want: f32 = (0..R).map(|k| g[k] * d[i + k]).sum();
            assert!((got - want).abs() < 1e-4, "output {i}: {got} against {want}");
        }
    }

    #[test]
    fn every_algorithm_computes_the_correlation() {
        correlates(&F4X3);
        correlates(&F3X5);
    }

    #[test]
    fn the_transposed_product_is_the_product_with_the_transpose() {
        let x = [1.0, -2.0, 3.0];
        let direct = times_transposed(&F3X5.output, &x);
        let columns: [[f32; 3]; 7] = std::array::from_fn(|j| std::array::from_fn(|i| F3X5.output[i][j]));
        assert_eq!(direct, times(&columns, &x));
    }
}
