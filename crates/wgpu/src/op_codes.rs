//! The elementwise ops' WGSL, generated from Rust when a pipeline is built
//! ([`wgsl_source`]): the unary functions come from kiln-tensor's table of unary ops
//! (`UNARY_DEFINITIONS`: one `switch` case per op, its code being its place in the
//! table), the binary op codes from [`BinaryCode`]. No code is a bare literal on either
//! side, and a code a `switch` does not know yields NaN, never another op's result.

use kiln_tensor::{BinaryOp, UNARY_DEFINITIONS, wgsl_prelude};

/// The binary kernel's op codes (`elementwise.wgsl`: `binary`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum BinaryCode {
    Add,
    Sub,
    Mul,
    Div,
    /// A broadcast copy of the first operand.
    BroadcastCopy,
    Maximum,
    Minimum,
    KeepWhere,
    Greater,
    GreaterEqual,
    Equal,
    AddRelu,
}

impl BinaryCode {
    const ALL: [BinaryCode; 12] = [
        BinaryCode::Add,
        BinaryCode::Sub,
        BinaryCode::Mul,
        BinaryCode::Div,
        BinaryCode::BroadcastCopy,
        BinaryCode::Maximum,
        BinaryCode::Minimum,
        BinaryCode::KeepWhere,
        BinaryCode::Greater,
        BinaryCode::GreaterEqual,
        BinaryCode::Equal,
        BinaryCode::AddRelu,
    ];

    /// The code of `op`.
    pub fn of(op: BinaryOp) -> BinaryCode {
        match op {
            BinaryOp::Add => BinaryCode::Add,
            BinaryOp::Sub => BinaryCode::Sub,
            BinaryOp::Mul => BinaryCode::Mul,
            BinaryOp::Div => BinaryCode::Div,
            BinaryOp::Maximum => BinaryCode::Maximum,
            BinaryOp::Minimum => BinaryCode::Minimum,
            BinaryOp::KeepWhere => BinaryCode::KeepWhere,
            BinaryOp::Greater => BinaryCode::Greater,
            BinaryOp::GreaterEqual => BinaryCode::GreaterEqual,
            BinaryOp::Equal => BinaryCode::Equal,
            BinaryOp::AddRelu => BinaryCode::AddRelu,
        }
    }

    fn wgsl_name(self) -> &'static str {
        match self {
            BinaryCode::Add => "BINARY_ADD",
            BinaryCode::Sub => "BINARY_SUB",
            BinaryCode::Mul => "BINARY_MUL",
            BinaryCode::Div => "BINARY_DIV",
            BinaryCode::BroadcastCopy => "BINARY_BROADCAST_COPY",
            BinaryCode::Maximum => "BINARY_MAXIMUM",
            BinaryCode::Minimum => "BINARY_MINIMUM",
            BinaryCode::KeepWhere => "BINARY_KEEP_WHERE",
            BinaryCode::Greater => "BINARY_GREATER",
            BinaryCode::GreaterEqual => "BINARY_GREATER_EQUAL",
            BinaryCode::Equal => "BINARY_EQUAL",
            BinaryCode::AddRelu => "BINARY_ADD_RELU",
        }
    }
}

/// A quiet NaN that the compiler cannot fold away (its bits include the op code): what
/// a `switch` returns for a code it does not know.
const UNKNOWN_CODE_NAN: &str = "bitcast<f32>(UNKNOWN_CODE_NAN_BASE | op)";

/// The generated WGSL prepended to `elementwise.wgsl`: the binary op codes, the unary
/// definitions' prelude, and `apply_unary(op, v, p0, p1)` and
/// `unary_gradient(op, x, y, g, p0, p1)` with one case per unary op.
pub fn wgsl_source() -> String {
    let mut text: String =
        BinaryCode::ALL.iter().map(|&c| format!("const {}: u32 = {}u;\n", c.wgsl_name(), c as u32)).collect();
    text += &format!("const UNKNOWN_CODE_NAN_BASE: u32 = 0x7fc00000u;\n{}", wgsl_prelude());
    let cases = |expression: fn(&kiln_tensor::UnaryDefinition) -> &'static str| -> String {
        UNARY_DEFINITIONS
            .iter()
            .map(|d| format!("        case {}u: {{ return {}; }} // {}\n", d.code, expression(d), d.name))
            .collect()
    };
    text += &format!(
        "fn apply_unary(op: u32, v: f32, p0: f32, p1: f32) -> f32 {{\n    switch op {{\n{}        default: {{ return {UNKNOWN_CODE_NAN}; }}\n    }}\n}}\n",
        cases(|d| d.wgsl_forward)
    );
    text += &format!(
        "fn unary_gradient(op: u32, x: f32, y: f32, g: f32, p0: f32, p1: f32) -> f32 {{\n    switch op {{\n{}        default: {{ return {UNKNOWN_CODE_NAN}; }}\n    }}\n}}\n",
        cases(|d| d.wgsl_gradient)
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unary_op_has_a_case_in_both_functions_and_unknown_codes_are_nan() {
        let text = wgsl_source();
        for definition in UNARY_DEFINITIONS {
            let case = format!("case {}u: {{ return ", definition.code);
            assert_eq!(text.matches(&case).count(), 2, "{} forward and gradient", definition.name);
        }
        assert_eq!(text.matches(&format!("default: {{ return {UNKNOWN_CODE_NAN}; }}")).count(), 2);
        assert!(text.contains("const BINARY_BROADCAST_COPY: u32 = 4u;"));
        assert!(text.contains("fn erf_approx(x: f32) -> f32"));
    }
}
