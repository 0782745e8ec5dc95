//! The elementwise functions of one tensor, each defined once, in [`unary_ops!`]'s
//! table below: its variant of [`UnaryOp`], the `Tensor` method, the forward formula
//! and its derivative for the CPU (Rust closures) and for the GPU (WGSL expressions),
//! an example for the tests and the inputs it is defined on. Everything else is
//! generated from the table: the op codes, the CPU kernels' dispatch (one vectorized
//! loop per op, through [`UnaryKernel`] and [`UnaryGradientKernel`]), the WGSL
//! functions the GPU compiles ([`UNARY_DEFINITIONS`]) and the list of ops every device
//! test walks ([`UnaryOp::examples`]). Adding an op is one entry here
//! (`docs/adding-an-op.md`).

use crate::Tensor;
use crate::fast_math::{exp, exp_bounded, logistic, polynomial};

/// Which saved value a unary op's derivative reads, next to the upstream gradient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GradientSource {
    /// The op's input `x`.
    Input,
    /// The op's output `y`.
    Output,
    /// Neither: the derivative is a constant.
    Nothing,
}

/// Where an elementwise function's values go: a backend implements this once per
/// buffer kind, and each op's formula arrives as its own closure type, so every op
/// compiles to its own vectorized loop.
pub trait UnaryKernel {
    /// What the kernel produces (a new buffer, or nothing when it writes in place).
    type Output;
    /// Applies `rule` to every value.
    fn map(self, rule: impl ValueRule) -> Self::Output;
}

/// Where an elementwise function's gradient values go (see [`UnaryKernel`]).
pub trait UnaryGradientKernel {
    /// What the kernel produces.
    type Output;
    /// `rule(s, g)` for every upstream gradient value `g`, `s` being the matching value
    /// of `source` (unread, and any number, for [`GradientSource::Nothing`]).
    fn map(self, source: GradientSource, rule: impl GradientRule) -> Self::Output;
}

/// One op's forward formula on one value, as the table defines it. The table's
/// implementations are `#[inline(always)]`, so a kernel's loop (even one compiled
/// several times, for AVX-512 and for AVX2) gets the formula itself, not a call.
pub trait ValueRule: Copy + Send + Sync {
    /// `op(v)`.
    fn apply(&self, v: f32) -> f32;
}

/// One op's derivative rule on one value: `g · op'(x)` from the saved value `s` (see
/// [`GradientSource`]) and the upstream gradient `g`; inlined like [`ValueRule`].
pub trait GradientRule: Copy + Send + Sync {
    /// The gradient for saved value `s` and upstream gradient `g`.
    fn apply(&self, s: f32, g: f32) -> f32;
}

/// The GPU's half of one op's definition: WGSL expressions over `v` (the input) for the
/// forward pass and over `x`, `y`, `g` (input, output, upstream gradient) for the
/// gradient, with the op's parameters as `p0` and `p1`.
#[derive(Clone, Copy, Debug)]
pub struct UnaryDefinition {
    /// The variant's name.
    pub name: &'static str,
    /// The op code: the definition's index in [`UNARY_DEFINITIONS`].
    pub code: u32,
    /// `op(v)` in WGSL.
    pub wgsl_forward: &'static str,
    /// `g · op'(x)` in WGSL.
    pub wgsl_gradient: &'static str,
}

/// The inputs an op is defined and differentiable on, for tests that draw inputs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryDomain {
    /// Any finite value.
    Any,
    /// Positive values only (logarithms, roots, fractional powers).
    Positive,
    /// Any value away from these kinks, where the derivative jumps.
    AwayFrom(&'static [f32]),
}

impl UnaryDomain {
    /// `values` moved onto the domain: absolute values for [`UnaryDomain::Positive`]
    /// (plus 0.5), and values within `margin` of a kink pushed to `margin` from it.
    pub fn place(self, values: &mut [f32], margin: f32) {
        for v in values {
            match self {
                UnaryDomain::Any => {}
                UnaryDomain::Positive => *v = v.abs() + 0.5,
                UnaryDomain::AwayFrom(kinks) => {
                    for &kink in kinks {
                        if (*v - kink).abs() < margin {
                            *v = kink + margin.copysign(*v - kink);
                        }
                    }
                }
            }
        }
    }
}

macro_rules! unary_ops {
    ($(
        $(#[$doc:meta])*
        $name:ident $({ $($param:ident),+ })? => $method:ident {
            forward: |$v:ident| $forward:expr,
            gradient: $source:ident |$s:pat_param, $g:ident| $gradient:expr,
            wgsl: $wgsl_forward:literal,
            wgsl_gradient: $wgsl_gradient:literal,
            example: $example:expr,
            domain: $domain:expr,
        }
    )*) => {
        /// Elementwise functions of one input. Each is defined once, in the table of
        /// `unary_ops.rs`; its op code is its place there.
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub enum UnaryOp {
            $(
                $(#[$doc])*
                $name $({ $(
                    #[allow(missing_docs)]
                    $param: f32
                ),+ })?,
            )*
        }

        /// Every op's WGSL definition, in op-code order.
        pub const UNARY_DEFINITIONS: &[UnaryDefinition] = &[$(
            UnaryDefinition {
                name: stringify!($name),
                code: UnaryCode::$name as u32,
                wgsl_forward: $wgsl_forward,
                wgsl_gradient: $wgsl_gradient,
            },
        )*];

        /// The op codes, one per variant, in table order.
        #[derive(Clone, Copy)]
        #[repr(u32)]
        enum UnaryCode { $($name),* }

        impl UnaryOp {
            /// The op code: the op's place in the table.
            pub fn code(self) -> u32 {
                match self { $(UnaryOp::$name { .. } => UnaryCode::$name as u32,)* }
            }

            /// The op's parameters in table order (`p0`, `p1` in WGSL), zero-padded.
            pub fn parameters(self) -> [f32; 2] {
                match self {
                    $(UnaryOp::$name $({ $($param),+ })? => {
                        let given: &[f32] = &[$($($param),+)?];
                        let mut out = [0.0; 2];
                        out[..given.len()].copy_from_slice(given);
                        out
                    })*
                }
            }

            /// One instance of every op (parameters chosen for tests) and the inputs it
            /// is defined on: what the device tests walk, so a new op is tested by
            /// being added.
            pub fn examples() -> Vec<(UnaryOp, UnaryDomain)> {
                use UnaryDomain::*;
                vec![$(($example, $domain)),*]
            }

            /// The op's `Tensor` method name (`relu`, `gelu`, …).
            pub fn method_name(self) -> &'static str {
                match self { $(UnaryOp::$name { .. } => stringify!($method),)* }
            }

            /// Runs `kernel` with this op's formula.
            pub fn forward<K: UnaryKernel>(self, kernel: K) -> K::Output {
                match self {
                    $(UnaryOp::$name $({ $($param),+ })? => {
                        /// The op's parameters, carried into its formula.
                        #[derive(Clone, Copy)]
                        struct Rule { $($($param: f32),+)? }
                        impl ValueRule for Rule {
                            #[inline(always)]
                            fn apply(&self, $v: f32) -> f32 {
                                let Rule { $($($param),+)? } = *self;
                                $forward
                            }
                        }
                        kernel.map(Rule { $($($param),+)? })
                    })*
                }
            }

            /// Runs `kernel` with this op's derivative rule, `g · op'(x)`.
            pub fn gradient<K: UnaryGradientKernel>(self, kernel: K) -> K::Output {
                match self {
                    $(UnaryOp::$name $({ $($param),+ })? => {
                        /// The op's parameters, carried into its derivative.
                        #[derive(Clone, Copy)]
                        struct Rule { $($($param: f32),+)? }
                        impl GradientRule for Rule {
                            // A rule need not use every parameter (`x + term` has slope 1).
                            #[allow(unused_variables)]
                            #[inline(always)]
                            fn apply(&self, $s: f32, $g: f32) -> f32 {
                                let Rule { $($($param),+)? } = *self;
                                $gradient
                            }
                        }
                        kernel.map(GradientSource::$source, Rule { $($($param),+)? })
                    })*
                }
            }
        }

        impl Tensor {
            $(
                $(#[$doc])*
                pub fn $method(&self $($(, $param: f32)+)?) -> Tensor {
                    self.unary(UnaryOp::$name $({ $($param),+ })?)
                }
            )*
        }
    };
}

/// `1 / √2`.
const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
/// `1 / √(2π)`, the standard normal density at 0.
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;
/// `√(2/π)`, the tanh approximation's scale.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;
/// The tanh approximation's cubic coefficient.
const GELU_CUBIC: f32 = 0.044_715;
/// Above this, softplus is the identity (PyTorch's default threshold).
const SOFTPLUS_THRESHOLD: f32 = 20.0;

/// Abramowitz & Stegun 7.1.26's polynomial in `t = 1 / (1 + 0.3275911·|x|)`, over `t`.
const ERF_COEFFICIENTS: [f32; 5] = [0.254_829_6, -0.284_496_74, 1.421_413_7, -1.453_152, 1.061_405_4];

/// The error function, Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7); the
/// WGSL `erf_approx` of [`wgsl_prelude`] is the same formula.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let t = 1.0 / 0.327_591_1f32.mul_add(x.abs(), 1.0);
    let poly = t * polynomial(t, &ERF_COEFFICIENTS);
    (-poly).mul_add(exp_bounded(-x * x), 1.0).copysign(x)
}

/// The standard normal CDF `Φ(x)` and `e^(−x²/2)` (the density's exponential, which
/// GELU's gradient needs too): `1 − Φ(|x|) = ½·erfc(|x|/√2)` by [`erf`]'s formula, whose
/// exponential is that same `e^(−x²/2)`, so a GELU and its gradient take one `exp`.
#[inline(always)]
fn normal_cdf(x: f32) -> (f32, f32) {
    let t = 1.0 / (0.327_591_1 * FRAC_1_SQRT_2).mul_add(x.abs(), 1.0);
    let poly = t * polynomial(t, &ERF_COEFFICIENTS);
    let gauss = exp_bounded(-0.5 * x * x);
    let upper_tail = 0.5 * poly * gauss;
    (if x >= 0.0 { 1.0 - upper_tail } else { upper_tail }, gauss)
}

/// The tanh approximation's inner value `√(2/π)(x + 0.044715x³)`.
#[inline(always)]
fn gelu_tanh_inner(x: f32) -> f32 {
    SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x)
}

unary_ops! {
    /// `-x`.
    Neg => neg {
        forward: |v| -v,
        gradient: Nothing |_, g| -g,
        wgsl: "-v",
        wgsl_gradient: "-g",
        example: UnaryOp::Neg,
        domain: Any,
    }
    /// `max(x, 0)`.
    Relu => relu {
        forward: |v| v.max(0.0),
        gradient: Input |x, g| if x > 0.0 { g } else { 0.0 },
        wgsl: "max(v, 0.0)",
        wgsl_gradient: "select(0.0, g, x > 0.0)",
        example: UnaryOp::Relu,
        domain: AwayFrom(&[0.0]),
    }
    /// The logistic function `1 / (1 + e^-x)`.
    Sigmoid => sigmoid {
        forward: |v| logistic(v),
        gradient: Output |y, g| g * y * (1.0 - y),
        wgsl: "1.0 / (1.0 + exp(-v))",
        wgsl_gradient: "g * y * (1.0 - y)",
        example: UnaryOp::Sigmoid,
        domain: Any,
    }
    /// Hyperbolic tangent.
    Tanh => tanh {
        forward: |v| v.tanh(),
        gradient: Output |y, g| g * (1.0 - y * y),
        wgsl: "tanh(v)",
        wgsl_gradient: "g * (1.0 - y * y)",
        example: UnaryOp::Tanh,
        domain: Any,
    }
    /// `e^x`.
    Exp => exp {
        forward: |v| exp(v),
        gradient: Output |y, g| g * y,
        wgsl: "exp(v)",
        wgsl_gradient: "g * y",
        example: UnaryOp::Exp,
        domain: Any,
    }
    /// Natural logarithm.
    Log => log {
        forward: |v| v.ln(),
        gradient: Input |x, g| g / x,
        wgsl: "log(v)",
        wgsl_gradient: "g / x",
        example: UnaryOp::Log,
        domain: Positive,
    }
    /// Square root.
    Sqrt => sqrt {
        forward: |v| v.sqrt(),
        gradient: Output |y, g| g * 0.5 / y,
        wgsl: "sqrt(v)",
        wgsl_gradient: "g * 0.5 / y",
        example: UnaryOp::Sqrt,
        domain: Positive,
    }
    /// `x^exponent` for a scalar exponent.
    Powf { exponent } => powf {
        forward: |v| v.powf(exponent),
        gradient: Input |x, g| g * exponent * x.powf(exponent - 1.0),
        wgsl: "pow(v, p0)",
        wgsl_gradient: "g * p0 * pow(x, p0 - 1.0)",
        example: UnaryOp::Powf { exponent: 2.5 },
        domain: Positive,
    }
    /// `x * factor`.
    MulScalar { factor } => mul_scalar {
        forward: |v| v * factor,
        gradient: Nothing |_, g| g * factor,
        wgsl: "v * p0",
        wgsl_gradient: "g * p0",
        example: UnaryOp::MulScalar { factor: 3.0 },
        domain: Any,
    }
    /// `x + term`.
    AddScalar { term } => add_scalar {
        forward: |v| v + term,
        gradient: Nothing |_, g| g,
        wgsl: "v + p0",
        wgsl_gradient: "g",
        example: UnaryOp::AddScalar { term: 2.0 },
        domain: Any,
    }
    /// `x` limited to `[min, max]`; the gradient passes where `min ≤ x ≤ max` (as in
    /// TensorFlow's `clip_by_value`) and is zero outside.
    Clamp { min, max } => clamp {
        forward: |v| v.max(min).min(max),
        gradient: Input |x, g| if (min..=max).contains(&x) { g } else { 0.0 },
        wgsl: "min(max(v, p0), p1)",
        wgsl_gradient: "select(0.0, g, x >= p0 && x <= p1)",
        example: UnaryOp::Clamp { min: -0.45, max: 0.95 },
        domain: AwayFrom(&[-0.45, 0.95]),
    }
    /// `|x|`; the gradient is `sign(x)`, zero at zero (as PyTorch's).
    Abs => abs {
        forward: |v| v.abs(),
        gradient: Input |x, g| if x > 0.0 { g } else if x < 0.0 { -g } else { 0.0 },
        wgsl: "abs(v)",
        wgsl_gradient: "g * sign(x)",
        example: UnaryOp::Abs,
        domain: AwayFrom(&[0.0]),
    }
    /// GELU, `x·Φ(x)` with `Φ` the standard normal CDF (PyTorch's `gelu`,
    /// `approximate='none'`).
    Gelu => gelu {
        forward: |v| v * normal_cdf(v).0,
        gradient: Input |x, g| {
            let (cdf, gauss) = normal_cdf(x);
            g * (cdf + x * FRAC_1_SQRT_2PI * gauss)
        },
        wgsl: "0.5 * v * (1.0 + erf_approx(v * FRAC_1_SQRT_2))",
        wgsl_gradient: "g * (0.5 * (1.0 + erf_approx(x * FRAC_1_SQRT_2)) + x * FRAC_1_SQRT_2PI * exp(-0.5 * x * x))",
        example: UnaryOp::Gelu,
        domain: Any,
    }
    /// GELU's tanh approximation, `0.5x(1 + tanh(√(2/π)(x + 0.044715x³)))` (PyTorch's
    /// `gelu`, `approximate='tanh'`).
    GeluTanh => gelu_tanh {
        // 0.5(1 + tanh u) = σ(2u), and 1 − tanh² u = 4σ(2u)(1 − σ(2u)).
        forward: |v| v * logistic(2.0 * gelu_tanh_inner(v)),
        gradient: Input |x, g| {
            let s = logistic(2.0 * gelu_tanh_inner(x));
            let inner_slope = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_CUBIC * x * x);
            g * (s + 2.0 * x * s * (1.0 - s) * inner_slope)
        },
        wgsl: "0.5 * v * (1.0 + tanh(SQRT_2_OVER_PI * (v + GELU_CUBIC * v * v * v)))",
        wgsl_gradient: "g * (0.5 * (1.0 + tanh(SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x))) \
            + 0.5 * x * (1.0 - pow(tanh(SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x)), 2.0)) \
            * SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_CUBIC * x * x))",
        example: UnaryOp::GeluTanh,
        domain: Any,
    }
    /// SiLU (swish), `x·σ(x)`.
    Silu => silu {
        forward: |v| v * logistic(v),
        gradient: Input |x, g| {
            let s = logistic(x);
            g * s * (1.0 + x * (1.0 - s))
        },
        wgsl: "v / (1.0 + exp(-v))",
        wgsl_gradient: "g * (1.0 / (1.0 + exp(-x))) * (1.0 + x * (1.0 - 1.0 / (1.0 + exp(-x))))",
        example: UnaryOp::Silu,
        domain: Any,
    }
    /// Leaky ReLU: `x` for `x > 0`, `negative_slope·x` otherwise (PyTorch's default
    /// slope is 0.01).
    LeakyRelu { negative_slope } => leaky_relu {
        forward: |v| if v > 0.0 { v } else { negative_slope * v },
        gradient: Input |x, g| if x > 0.0 { g } else { negative_slope * g },
        wgsl: "select(p0 * v, v, v > 0.0)",
        wgsl_gradient: "select(p0 * g, g, x > 0.0)",
        example: UnaryOp::LeakyRelu { negative_slope: 0.1 },
        domain: AwayFrom(&[0.0]),
    }
    /// Softplus, `ln(1 + e^x)`, and `x` itself above 20 (PyTorch's defaults: beta 1,
    /// threshold 20).
    Softplus => softplus {
        forward: |v| if v > SOFTPLUS_THRESHOLD { v } else { v.exp().ln_1p() },
        gradient: Input |x, g| if x > SOFTPLUS_THRESHOLD { g } else { g * logistic(x) },
        wgsl: "select(log(1.0 + exp(v)), v, v > SOFTPLUS_THRESHOLD)",
        wgsl_gradient: "select(g / (1.0 + exp(-x)), g, x > SOFTPLUS_THRESHOLD)",
        example: UnaryOp::Softplus,
        domain: Any,
    }
    /// ELU: `x` for `x > 0`, `alpha·(e^x − 1)` otherwise.
    Elu { alpha } => elu {
        forward: |v| if v > 0.0 { v } else { alpha * v.exp_m1() },
        gradient: Input |x, g| if x > 0.0 { g } else { g * alpha * exp(x) },
        wgsl: "select(p0 * (exp(v) - 1.0), v, v > 0.0)",
        wgsl_gradient: "select(g * p0 * exp(x), g, x > 0.0)",
        example: UnaryOp::Elu { alpha: 1.5 },
        domain: AwayFrom(&[0.0]),
    }
}

/// The WGSL the definitions' expressions rely on: the `const`s, with the values the
/// CPU's formulas use, and `erf_approx`, the same formula as [`erf`].
pub fn wgsl_prelude() -> String {
    let constants = [
        ("FRAC_1_SQRT_2", FRAC_1_SQRT_2),
        ("FRAC_1_SQRT_2PI", FRAC_1_SQRT_2PI),
        ("SQRT_2_OVER_PI", SQRT_2_OVER_PI),
        ("GELU_CUBIC", GELU_CUBIC),
        ("SOFTPLUS_THRESHOLD", SOFTPLUS_THRESHOLD),
    ];
    let mut text: String =
        constants.iter().map(|(name, value)| format!("const {name}: f32 = {value:?};\n")).collect();
    text += "fn erf_approx(x: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.3275911 * abs(x));
    let poly = t * (0.2548296 + t * (-0.28449674 + t * (1.4214137 + t * (-1.453152 + t * 1.0614054))));
    let magnitude = 1.0 - poly * exp(-x * x);
    return select(magnitude, -magnitude, x < 0.0);
}
";
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_codes_are_table_places_and_every_op_has_an_example() {
        for (i, definition) in UNARY_DEFINITIONS.iter().enumerate() {
            assert_eq!(definition.code as usize, i);
        }
        let examples = UnaryOp::examples();
        assert_eq!(examples.len(), UNARY_DEFINITIONS.len());
        for ((op, _), definition) in examples.iter().zip(UNARY_DEFINITIONS) {
            assert_eq!(op.code(), definition.code, "{op:?} is listed in table order");
        }
        assert_eq!(UnaryOp::Clamp { min: -1.0, max: 2.0 }.parameters(), [-1.0, 2.0]);
        assert_eq!(UnaryOp::Powf { exponent: 3.0 }.parameters(), [3.0, 0.0]);
        assert_eq!(UnaryOp::Gelu.method_name(), "gelu");
    }

    #[test]
    fn erf_matches_reference_values() {
        // erf at 0, 0.5, 1, 2 and -1 to 9 digits (Abramowitz & Stegun, table 7.1). The
        // formula's own error (1.5e-7) plus two f32 roundings near 1 (6e-8 each).
        let cases: [(f64, f64); 5] = [
            (0.0, 0.0),
            (0.5, 0.520_499_878),
            (1.0, 0.842_700_793),
            (2.0, 0.995_322_265),
            (-1.0, -0.842_700_793),
        ];
        for (x, want) in cases {
            let got = f64::from(erf(x as f32));
            assert!((got - want).abs() < 2.7e-7, "erf({x}) = {got}, want {want}");
        }
    }

    #[test]
    fn the_normal_cdf_equals_half_one_plus_erf_and_its_density_term() {
        for i in -400..=400 {
            let x = i as f32 * 0.025;
            let (cdf, gauss) = normal_cdf(x);
            let want = 0.5 * (1.0 + f64::from(erf(x * FRAC_1_SQRT_2)));
            // Two f32 evaluations of one formula, each rounded a few times near 0.5.
            assert!((f64::from(cdf) - want).abs() < 2.5e-7, "Φ({x}) = {cdf}, want {want}");
            let want_gauss = (-0.5 * f64::from(x) * f64::from(x)).exp();
            assert!((f64::from(gauss) - want_gauss).abs() < 1e-7, "e^(-x²/2) at {x}: {gauss}");
        }
    }

    #[test]
    fn the_wgsl_prelude_carries_the_rust_values() {
        let text = wgsl_prelude();
        assert!(text.contains("const GELU_CUBIC: f32 = 0.044715;"), "{text}");
        assert!(text.contains("0.3275911 * abs(x)") && text.contains("t * 1.0614054"), "{text}");
    }
}
