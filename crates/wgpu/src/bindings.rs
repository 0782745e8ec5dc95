//! Each kernel family's storage bindings, declared once: `binding_set!` makes from one
//! list the struct a call site fills in by name (`PoolBindings { in0: Some(x), ..Default::default() }`),
//! the bind group's slots in binding order, and the WGSL declarations that
//! [`wgsl_header`] puts in front of the family's shader (the `.wgsl` files declare
//! none). Binding 0 is always the parameter block, `params: Params`.

use std::borrow::Cow;

use kiln_tensor::StorageRef;

/// How a kernel uses one storage binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `var<storage, read>`
    Read,
    /// `var<storage, read_write>`
    Write,
}

/// The element type of a storage binding's array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Element {
    /// `array<f32>`
    F32,
    /// `array<i32>`
    I32,
}

/// One storage binding: its WGSL name, access and element type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// The variable's name in WGSL.
    pub name: Cow<'static, str>,
    /// Read-only or read-write.
    pub access: Access,
    /// The array's element type.
    pub element: Element,
}

impl Binding {
    /// A binding with a fixed name.
    pub const fn new(name: &'static str, access: Access, element: Element) -> Self {
        Binding { name: Cow::Borrowed(name), access, element }
    }
}

/// The WGSL declarations of the parameter block (binding 0, of the shader's `Params`
/// struct) and of `bindings` as bindings 1, 2, ….
pub fn wgsl_header(bindings: &[Binding]) -> String {
    let mut text = String::from("@group(0) @binding(0) var<uniform> params: Params;\n");
    for (i, binding) in bindings.iter().enumerate() {
        let access = match binding.access {
            Access::Read => "read",
            Access::Write => "read_write",
        };
        let element = match binding.element {
            Element::F32 => "f32",
            Element::I32 => "i32",
        };
        text += &format!(
            "@group(0) @binding({}) var<storage, {access}> {}: array<{element}>;\n",
            i + 1,
            binding.name
        );
    }
    text
}

/// Declares a family's bindings: `Name { field: Access Element, … }`, in binding order.
macro_rules! binding_set {
    ($(#[$doc:meta])* $set:ident { $($(#[$field_doc:meta])* $field:ident: $access:ident $element:ident),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Default)]
        pub struct $set<'a> {
            $($(#[$field_doc])* pub $field: Option<&'a StorageRef>,)+
        }

        impl<'a> $set<'a> {
            /// The bindings, in binding order (1, 2, …).
            pub const DECLARATION: &'static [Binding] =
                &[$(Binding::new(stringify!($field), Access::$access, Element::$element)),+];

            /// The storage bound at 1, 2, … (`None`: a binding this kernel leaves unused).
            pub fn slots(&self) -> Vec<Option<&'a StorageRef>> {
                vec![$(self.$field),+]
            }
        }
    };
}

binding_set! {
    /// `elementwise.wgsl`: fill, unary and binary ops, their gradients, view copies.
    ElementwiseBindings {
        /// The first input.
        in0: Read F32,
        /// The second input.
        in1: Read F32,
        /// The third input (a unary gradient's upstream gradient).
        in2: Read F32,
        /// The result.
        out: Write F32,
    }
}

binding_set! {
    /// `dropout.wgsl`.
    DropoutBindings {
        /// The input.
        x: Read F32,
        /// The result.
        out: Write F32,
    }
}

binding_set! {
    /// `reduce.wgsl`: axis reductions, softmax, normalization, cross-entropy.
    ReduceBindings {
        /// The first input.
        in0: Read F32,
        /// The second input.
        in1: Read F32,
        /// Integer input (labels, argmax positions).
        ints: Read I32,
        /// The result.
        out: Write F32,
        /// A second result (per-row losses, reciprocal deviations).
        out2: Write F32,
        /// An integer result (argmax positions).
        out_ints: Write I32,
    }
}

binding_set! {
    /// `channel_norm.wgsl` and `row_norm.wgsl`: batch and layer normalization and their
    /// gradients.
    NormBindings {
        /// The input.
        x: Read F32,
        /// The upstream gradient (backward).
        grad: Read F32,
        /// The scale per channel.
        weight: Read F32,
        /// The shift per channel (forward).
        bias: Read F32,
        /// Batch norm: mean, then variance, per channel, written by a forward pass on
        /// the batch's statistics, read otherwise. Layer norm: mean, then `rstd`, per row.
        stats: Write F32,
        /// The output, or the input gradient.
        out: Write F32,
        /// The weight gradient, then the bias gradient, per channel or feature (backward).
        param_grads: Write F32,
    }
}

binding_set! {
    /// `pool.wgsl`: max pooling and its gradient.
    PoolBindings {
        /// The input (or upstream gradient).
        in0: Read F32,
        /// The argmax positions the gradient reads.
        ints: Read I32,
        /// The result.
        out: Write F32,
        /// The argmax positions the forward pass writes.
        out_ints: Write I32,
    }
}

binding_set! {
    /// `index_axis.wgsl`: gather and scatter-add along an axis.
    IndexAxisBindings {
        /// The values.
        in0: Read F32,
        /// The indices.
        ints: Read I32,
        /// The result.
        out: Write F32,
    }
}

binding_set! {
    /// `optim.wgsl`: SGD and Adam on one tensor.
    OptimBindings {
        /// The gradient.
        grad: Read F32,
        /// The parameter, updated in place.
        param: Write F32,
        /// Momentum, or Adam's first moment.
        state1: Write F32,
        /// Adam's second moment.
        state2: Write F32,
    }
}

binding_set! {
    /// `matmul.wgsl` on the tiled GEMM.
    MatmulBindings {
        /// The left operand.
        a: Read F32,
        /// The right operand.
        b: Read F32,
        /// The bias added to every row.
        bias: Read F32,
        /// The product.
        c: Write F32,
        /// Split-K's partial sums (set by the GEMM pass itself).
        partial: Write F32,
    }
}

binding_set! {
    /// `conv2d_forward.wgsl` on the tiled GEMM.
    ConvForwardBindings {
        /// The input images.
        input: Read F32,
        /// The kernels.
        weight: Read F32,
        /// The bias per output channel.
        bias: Read F32,
        /// The output images.
        output: Write F32,
        /// Split-K's partial sums (set by the GEMM pass itself).
        partial: Write F32,
    }
}

binding_set! {
    /// `conv2d_input_grad.wgsl` on the tiled GEMM.
    ConvInputGradBindings {
        /// The output gradient.
        grad: Read F32,
        /// The kernels.
        weight: Read F32,
        /// The input gradient.
        dx: Write F32,
        /// Split-K's partial sums (set by the GEMM pass itself).
        partial: Write F32,
    }
}

binding_set! {
    /// `conv2d_weight_grad.wgsl` on the tiled GEMM.
    ConvWeightGradBindings {
        /// The output gradient.
        grad: Read F32,
        /// The input images.
        input: Read F32,
        /// The kernels' gradient.
        dw: Write F32,
        /// Split-K's partial sums (set by the GEMM pass itself).
        partial: Write F32,
    }
}

binding_set! {
    /// `fma_peak.wgsl`.
    FmaPeakBindings {
        /// Where each invocation stores its sums, so they are not optimized away.
        sink: Write F32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_declares_params_then_each_binding_in_order() {
        let header = wgsl_header(PoolBindings::DECLARATION);
        assert_eq!(
            header,
            "@group(0) @binding(0) var<uniform> params: Params;\n\
             @group(0) @binding(1) var<storage, read> in0: array<f32>;\n\
             @group(0) @binding(2) var<storage, read> ints: array<i32>;\n\
             @group(0) @binding(3) var<storage, read_write> out: array<f32>;\n\
             @group(0) @binding(4) var<storage, read_write> out_ints: array<i32>;\n"
        );
    }

    #[test]
    fn a_set_lists_its_storage_in_binding_order() {
        let set = ConvInputGradBindings { grad: None, weight: None, dx: None, partial: None };
        assert_eq!(set.slots().len(), ConvInputGradBindings::DECLARATION.len());
        assert_eq!(ConvInputGradBindings::DECLARATION[2].name, "dx");
    }
}
