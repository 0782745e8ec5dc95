//! `f32` functions written without branches or library calls, so that a loop applying
//! them to a slice compiles to SIMD code (the CPU backend runs such loops compiled for
//! AVX-512 or AVX2 where the CPU has them): `exp` by range reduction and a polynomial,
//! and the logistic function on top of it. The unary-op table's CPU formulas and the
//! CPU softmax use them; libm's `expf` is a call per element that no compiler
//! vectorizes.
//!
//! Polynomials are evaluated with fused multiply-adds (`f32::mul_add`), half the
//! instructions of a multiply and an add. Inside the CPU backend's loops, compiled with
//! FMA, each is one instruction; called from code built without FMA (plain x86-64), it
//! becomes a correct but slow library call.

/// Above this `e^x` overflows `f32` (`ln(f32::MAX)`).
const EXP_OVERFLOW: f32 = 88.722_84;
/// Below this `e^x` is under `f32::MIN_POSITIVE` (`ln(f32::MIN_POSITIVE)`); [`exp`]
/// returns 0 there, as flush-to-zero hardware does.
const EXP_UNDERFLOW: f32 = -87.336_55;

/// `e^x` within 2 ulp for normal results; `+∞` above ≈ 88.72, `0` below ≈ −87.34 (no
/// subnormal results), NaN for NaN.
///
/// `e^x = 2ⁿ · e^r` with `n = round(x / ln 2)` and `|r| ≤ ln 2 / 2`; `e^r` is its Taylor
/// polynomial to `r⁷` (truncation below 5e-9), `2ⁿ` is built from exponent bits.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let (poly, n) = exp_parts(x.clamp(EXP_UNDERFLOW, EXP_OVERFLOW));
    // 2ⁿ as two factors built from their exponent fields, 2^⌊n/2⌋ and 2^⌈n/2⌉: each is
    // a normal float for every n in −126..=128, where 2ⁿ itself may not be.
    let value = poly * power_of_two(n >> 1) * power_of_two(n - (n >> 1));
    if x > EXP_OVERFLOW {
        f32::INFINITY
    } else if x < EXP_UNDERFLOW {
        0.0
    } else {
        value
    }
}

/// [`exp`] for `x ≤ 88` only (as softmax's `x − max` and a Gaussian's `−x²/2` are),
/// where `2ⁿ` is one normal float: eight instructions fewer than [`exp`]. Larger `x`
/// give wrong values.
#[inline(always)]
pub fn exp_bounded(x: f32) -> f32 {
    // A comparison rather than `max`, which would turn NaN into the bound.
    let (poly, n) = exp_parts(if x < EXP_UNDERFLOW { EXP_UNDERFLOW } else { x });
    let value = poly * power_of_two(n);
    if x < EXP_UNDERFLOW { 0.0 } else { value }
}

/// `(e^r, n)` with `x = n·ln 2 + r` and `|r| ≤ ln 2 / 2`, for `x` within
/// [`EXP_UNDERFLOW`]`..=`[`EXP_OVERFLOW`]: `e^r` is its Taylor polynomial to `r⁷`
/// (truncation below 5e-9).
#[inline(always)]
fn exp_parts(x: f32) -> (f32, i32) {
    // ln 2 in two parts: `n · LN2_HIGH` is exact for every `n` used here.
    const LN2_HIGH: f32 = 355.0 / 512.0;
    const LN2_LOW: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5·2²³ rounds a float of magnitude below 2²² to an integer.
    const ROUND: f32 = 12_582_912.0;
    // Bits of the shifted value `1.5·2²³ + n`: `n` sits in the low mantissa bits.
    const ROUND_BITS: i32 = 0x4B40_0000;
    let shifted = x.mul_add(std::f32::consts::LOG2_E, ROUND);
    let n = shifted - ROUND;
    let r = (-n).mul_add(LN2_LOW, (-n).mul_add(LN2_HIGH, x));
    let poly =
        polynomial(r, &[1.0, 1.0, 1.0 / 2.0, 1.0 / 6.0, 1.0 / 24.0, 1.0 / 120.0, 1.0 / 720.0, 1.0 / 5040.0]);
    // `n` as an integer from the bits rather than `n as i32`, whose saturating
    // conversion does not vectorize (it compiled to a scalar convert per lane).
    (poly, (shifted.to_bits() as i32).wrapping_sub(ROUND_BITS))
}

/// `2ⁿ` from its exponent field, for `n` in −126..=127.
#[inline(always)]
fn power_of_two(n: i32) -> f32 {
    f32::from_bits(((n + 127) as u32) << 23)
}

/// `c₀ + c₁x + c₂x² + …` by Horner's rule, one fused multiply-add per coefficient
/// after the last.
#[inline(always)]
pub fn polynomial<const N: usize>(x: f32, coefficients: &[f32; N]) -> f32 {
    coefficients[..N - 1].iter().rev().fold(coefficients[N - 1], |acc, c| acc.mul_add(x, *c))
}

/// The logistic function `1 / (1 + e^-x)`: 0 at −∞, 1 at +∞.
#[inline(always)]
pub fn logistic(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units of the last place between two finite floats of one sign.
    fn ulps(a: f32, b: f32) -> u32 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    #[test]
    fn exp_is_within_two_ulp_of_the_exact_value_over_its_normal_range() {
        let mut worst = 0;
        let mut x = -87.0f32;
        while x < 88.7 {
            let exact = (x as f64).exp() as f32;
            worst = worst.max(ulps(exp(x), exact));
            x += 0.013_7;
        }
        for x in [0.0f32, 1e-8, -1e-8, 0.5, -0.5, 1.0, 88.72, -87.3] {
            worst = worst.max(ulps(exp(x), (x as f64).exp() as f32));
        }
        assert!(worst <= 2, "worst error {worst} ulp");
    }

    #[test]
    fn exp_bounded_equals_exp_up_to_88() {
        let mut x = -100.0f32;
        while x <= 88.0 {
            assert_eq!(exp_bounded(x).to_bits(), exp(x).to_bits(), "at {x}");
            x += 0.0071;
        }
        assert_eq!(exp_bounded(f32::NEG_INFINITY), 0.0);
        assert!(exp_bounded(f32::NAN).is_nan());
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn exp_saturates_and_propagates_nan() {
        assert_eq!(exp(89.0), f32::INFINITY);
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp(-88.0), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert!(exp(f32::NAN).is_nan());
        assert!(exp(88.72).is_finite());
    }

    #[test]
    fn logistic_reaches_its_limits() {
        assert_eq!(logistic(0.0), 0.5);
        assert_eq!(logistic(f32::INFINITY), 1.0);
        assert_eq!(logistic(f32::NEG_INFINITY), 0.0);
        assert!((logistic(2.0) as f64 - 1.0 / (1.0 + (-2.0f64).exp())).abs() < 1e-7);
    }
}
