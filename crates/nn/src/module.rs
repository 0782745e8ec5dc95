//! The `Module` trait every layer and model implements, and the helpers built on its
//! named-parameter visitor (counting, listing, moving to a device, summarizing).

use std::any::Any;

use kiln_tensor::{Device, Shape, Tensor};

use crate::summary::{Summary, SummaryRow};
use crate::{Mode, Result};

/// How a layer appears in a model summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SummaryStyle {
    /// A row of its own with this label, e.g. `conv 11×11/4, 96`.
    Row(String),
    /// Folded into the row before it, appending this text (empty for activations, so
    /// `conv → ReLU` is one row; ` + dropout 0.5` for dropout).
    Fold(String),
}

/// A layer or a model: a function of a tensor with named parameters.
///
/// Parameter names follow PyTorch (`features.0.weight`), built by containers as they
/// visit their children, so checkpoints map one to one onto the equivalent
/// `torch.nn.Module`.
///
/// ```
/// use kiln_cpu::CpuDevice;
/// use kiln_nn::{Dense, Initializer, Mode, Module, ReLU, Sequential};
/// use kiln_tensor::{Device, Tensor};
///
/// let device = Device::cpu();
/// let mut init = Initializer::new(&device, 0);
/// let mlp = Sequential::new().push(Dense::new(&mut init, 4, 8)).push(ReLU).push(Dense::new(&mut init, 8, 3));
/// let y = mlp.forward(&Tensor::ones([2, 4], &device), Mode::Eval);
/// assert_eq!(y.dims(), &[2, 3]);
/// assert_eq!(mlp.parameter_count(), 4 * 8 + 8 + 8 * 3 + 3);
/// let names: Vec<String> = mlp.named_parameters().into_iter().map(|(name, _)| name).collect();
/// assert_eq!(names, ["0.weight", "0.bias", "2.weight", "2.bias"]);
/// ```
pub trait Module: Any + Send + Sync {
    /// Applies the layer to a batch (the first dimension of `x` is the batch).
    fn forward(&self, x: &Tensor, mode: Mode) -> Tensor;

    /// The output shape for one example of shape `input` (no batch dimension), without
    /// running; an error says why the input does not fit.
    fn output_shape(&self, input: &Shape) -> Result<Shape>;

    /// How the layer appears in a summary (by default a row named after its type, as
    /// PyTorch prints a module's class).
    fn summary_style(&self) -> SummaryStyle {
        let full = std::any::type_name::<Self>();
        let path = full.split('<').next().unwrap_or(full);
        SummaryStyle::Row(path.rsplit("::").next().unwrap_or(path).to_string())
    }

    /// The named sub-modules this module is made of (PyTorch's `named_children`). A
    /// model written as a struct of layers lists its fields here, and the default
    /// visitors below then name its parameters and buffers `{child}.{name}`, as
    /// PyTorch does; a layer with parameters of its own overrides the visitors instead.
    fn children(&self) -> Vec<(&str, &dyn Module)> {
        Vec::new()
    }

    /// The same sub-modules as [`Module::children`], mutably, in the same order.
    fn children_mut(&mut self) -> Vec<(&str, &mut dyn Module)> {
        Vec::new()
    }

    /// Calls `f` with the full name (`prefix` + own name) of every parameter.
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        for (name, child) in self.children() {
            child.visit_parameters(&format!("{prefix}{name}."), f);
        }
    }

    /// Calls `f` with the full name and a mutable handle of every parameter.
    fn visit_parameters_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor)) {
        for (name, child) in self.children_mut() {
            child.visit_parameters_mut(&format!("{prefix}{name}."), f);
        }
    }

    /// Calls `f` with the full name of every buffer: state saved and loaded with the
    /// parameters but not trained, such as BatchNorm's running statistics (PyTorch's
    /// `register_buffer`).
    fn visit_buffers(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        for (name, child) in self.children() {
            child.visit_buffers(&format!("{prefix}{name}."), f);
        }
    }

    /// Calls `f` with the full name and a mutable handle of every buffer.
    fn visit_buffers_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor)) {
        for (name, child) in self.children_mut() {
            child.visit_buffers_mut(&format!("{prefix}{name}."), f);
        }
    }

    /// `(name, buffer)` pairs in a fixed order.
    fn named_buffers(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        self.visit_buffers("", &mut |name, t| out.push((name.to_string(), t.clone())));
        out
    }

    /// Appends this module's summary rows for an input of shape `input` and returns the
    /// output shape. Containers override this to summarize their children.
    fn summarize(&self, input: &Shape, rows: &mut Vec<SummaryRow>) -> Result<Shape> {
        let output = self.output_shape(input)?;
        let params = self.parameter_count();
        match (self.summary_style(), rows.last_mut()) {
            (SummaryStyle::Fold(suffix), Some(last)) => {
                last.layer.push_str(&suffix);
                last.output = output.clone();
                last.params += params;
            }
            (SummaryStyle::Row(layer) | SummaryStyle::Fold(layer), _) => {
                rows.push(SummaryRow { layer, output: output.clone(), params })
            }
        }
        Ok(output)
    }

    /// Number of scalar parameters.
    fn parameter_count(&self) -> usize {
        let mut count = 0;
        self.visit_parameters("", &mut |_, t| count += t.numel());
        count
    }

    /// `(name, parameter)` pairs in a fixed order.
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        self.visit_parameters("", &mut |name, t| out.push((name.to_string(), t.clone())));
        out
    }

    /// Moves every parameter and buffer to `device` (no-op for those already there).
    fn to_device(&mut self, device: &Device) -> Result<()> {
        let mut failure = None;
        self.visit_parameters_mut("", &mut |_, t| {
            if failure.is_none() && t.device() != device {
                match t.to_device(device) {
                    Ok(moved) => *t = moved.with_requires_grad(),
                    Err(err) => failure = Some(err),
                }
            }
        });
        self.visit_buffers_mut("", &mut |_, t| {
            if failure.is_none() && t.device() != device {
                match t.to_device(device) {
                    Ok(moved) => *t = moved,
                    Err(err) => failure = Some(err),
                }
            }
        });
        failure.map_or(Ok(()), |err| Err(err.into()))
    }

    /// The Keras-style table of this model for one example of shape `input`.
    fn summary(&self, input: &Shape) -> Result<Summary> {
        let mut rows = Vec::new();
        self.summarize(input, &mut rows)?;
        Ok(Summary::new(input.clone(), rows))
    }
}
