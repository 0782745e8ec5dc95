//! Op codes shared by Rust and WGSL. Each enum names its codes once; the WGSL `const`
//! declarations the shaders `switch` on are generated from these enums when a pipeline
//! is built ([`wgsl_constants`]), so no code is a bare literal on either side.

use kiln_tensor::{BinaryOp, UnaryOp};

/// The unary kernels' op codes (`elementwise.wgsl`: `unary`, `unary_backward`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum UnaryCode {
    Neg,
    Relu,
    Sigmoid,
    Tanh,
    Exp,
    Log,
    Sqrt,
    Powf,
    MulScalar,
    AddScalar,
    Clamp,
}

impl UnaryCode {
    const ALL: [UnaryCode; 11] = [
        UnaryCode::Neg,
        UnaryCode::Relu,
        UnaryCode::Sigmoid,
        UnaryCode::Tanh,
        UnaryCode::Exp,
        UnaryCode::Log,
        UnaryCode::Sqrt,
        UnaryCode::Powf,
        UnaryCode::MulScalar,
        UnaryCode::AddScalar,
        UnaryCode::Clamp,
    ];

    /// The code of `op` and its operands (`scalar`, `bound` of the parameter block).
    pub fn of(op: UnaryOp) -> (UnaryCode, [f32; 2]) {
        match op {
            UnaryOp::Neg => (UnaryCode::Neg, [0.0; 2]),
            UnaryOp::Relu => (UnaryCode::Relu, [0.0; 2]),
            UnaryOp::Sigmoid => (UnaryCode::Sigmoid, [0.0; 2]),
            UnaryOp::Tanh => (UnaryCode::Tanh, [0.0; 2]),
            UnaryOp::Exp => (UnaryCode::Exp, [0.0; 2]),
            UnaryOp::Log => (UnaryCode::Log, [0.0; 2]),
            UnaryOp::Sqrt => (UnaryCode::Sqrt, [0.0; 2]),
            UnaryOp::Powf(p) => (UnaryCode::Powf, [p, 0.0]),
            UnaryOp::MulScalar(s) => (UnaryCode::MulScalar, [s, 0.0]),
            UnaryOp::AddScalar(s) => (UnaryCode::AddScalar, [s, 0.0]),
            UnaryOp::Clamp { min, max } => (UnaryCode::Clamp, [min, max]),
        }
    }

    fn wgsl_name(self) -> &'static str {
        match self {
            UnaryCode::Neg => "UNARY_NEG",
            UnaryCode::Relu => "UNARY_RELU",
            UnaryCode::Sigmoid => "UNARY_SIGMOID",
            UnaryCode::Tanh => "UNARY_TANH",
            UnaryCode::Exp => "UNARY_EXP",
            UnaryCode::Log => "UNARY_LOG",
            UnaryCode::Sqrt => "UNARY_SQRT",
            UnaryCode::Powf => "UNARY_POWF",
            UnaryCode::MulScalar => "UNARY_MUL_SCALAR",
            UnaryCode::AddScalar => "UNARY_ADD_SCALAR",
            UnaryCode::Clamp => "UNARY_CLAMP",
        }
    }
}

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
}

impl BinaryCode {
    const ALL: [BinaryCode; 5] =
        [BinaryCode::Add, BinaryCode::Sub, BinaryCode::Mul, BinaryCode::Div, BinaryCode::BroadcastCopy];

    /// The code of `op`.
    pub fn of(op: BinaryOp) -> BinaryCode {
        match op {
            BinaryOp::Add => BinaryCode::Add,
            BinaryOp::Sub => BinaryCode::Sub,
            BinaryOp::Mul => BinaryCode::Mul,
            BinaryOp::Div => BinaryCode::Div,
        }
    }

    fn wgsl_name(self) -> &'static str {
        match self {
            BinaryCode::Add => "BINARY_ADD",
            BinaryCode::Sub => "BINARY_SUB",
            BinaryCode::Mul => "BINARY_MUL",
            BinaryCode::Div => "BINARY_DIV",
            BinaryCode::BroadcastCopy => "BINARY_BROADCAST_COPY",
        }
    }
}

/// The WGSL `const` declarations of every op code, prepended to the elementwise
/// shader.
pub fn wgsl_constants() -> String {
    let unary = UnaryCode::ALL.iter().map(|&c| (c.wgsl_name(), c as u32));
    let binary = BinaryCode::ALL.iter().map(|&c| (c.wgsl_name(), c as u32));
    unary.chain(binary).map(|(name, code)| format!("const {name}: u32 = {code}u;\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_declared_once_with_its_value() {
        let text = wgsl_constants();
        assert_eq!(text.lines().count(), UnaryCode::ALL.len() + BinaryCode::ALL.len());
        assert!(
            text.contains("const UNARY_NEG: u32 = 0u;") && text.contains("const UNARY_CLAMP: u32 = 10u;")
        );
        assert!(text.contains("const BINARY_BROADCAST_COPY: u32 = 4u;"));
        for (i, code) in UnaryCode::ALL.iter().enumerate() {
            assert_eq!(*code as usize, i, "UnaryCode::ALL lists the codes in order");
        }
    }
}
