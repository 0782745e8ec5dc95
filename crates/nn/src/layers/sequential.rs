//! `Sequential`: modules applied in order, named by index (`0`, `1`, …) or by a name
//! given when pushed (`features`, `classifier`).

use kiln_tensor::{Shape, Tensor};

use super::fusion::{ThenRelu, as_batch_norm, as_conv, as_dropout, conv_batch_norm, is_relu, relu_fusion};
use crate::summary::SummaryRow;
use crate::{Mode, Module, Result, SummaryStyle};

/// Modules applied one after another; PyTorch's `nn.Sequential`. Each child sees its
/// own dropout seed ([`Mode::child`]).
///
/// ```
/// use kiln_cpu::CpuDevice;
/// use kiln_nn::{Conv2d, Dense, Flatten, Initializer, MaxPool2d, Mode, Module, ReLU, Sequential};
/// use kiln_tensor::{Device, Shape, Tensor};
///
/// let device = Device::cpu();
/// let mut init = Initializer::new(&device, 1);
/// let features = Sequential::new().push(Conv2d::new(&mut init, 1, 8, 3).with_padding(1)).push(ReLU).push(MaxPool2d::new(2, 2));
/// let classifier = Sequential::new().push(Flatten).push(Dense::new(&mut init, 8 * 14 * 14, 10));
/// let model = Sequential::new().push_named("features", features).push_named("classifier", classifier);
/// assert_eq!(model.output_shape(&Shape::from([1, 28, 28])).unwrap(), Shape::from([10]));
/// assert_eq!(model.named_parameters()[2].0, "classifier.1.weight");
/// let logits = model.forward(&Tensor::zeros([4, 1, 28, 28], &device), Mode::train(0));
/// assert_eq!(logits.dims(), &[4, 10]);
/// ```
#[derive(Default)]
pub struct Sequential {
    children: Vec<(String, Box<dyn Module>)>,
}

impl Sequential {
    /// An empty container.
    pub fn new() -> Self {
        Sequential::default()
    }

    /// Appends `module`, named by its position.
    pub fn push(mut self, module: impl Module + 'static) -> Self {
        let name = self.children.len().to_string();
        self.children.push((name, Box::new(module)));
        self
    }

    /// Appends `module` under `name`.
    pub fn push_named(mut self, name: &str, module: impl Module + 'static) -> Self {
        self.children.push((name.to_string(), Box::new(module)));
        self
    }

    /// Number of children.
    pub fn len(&self) -> usize {
        self.children.len()
    }

    /// Whether there are no children.
    pub fn is_empty(&self) -> bool {
        self.children.is_empty()
    }
}

impl Sequential {
    /// Child `i` on `h` fused with the ReLU (and the dropout) after it, and how many
    /// children that output covers; `None` where nothing fuses.
    fn fused_forward(&self, i: usize, h: &Tensor, mode: Mode) -> Option<(Tensor, usize)> {
        let child = |j: usize| self.children.get(j).map(|(_, c)| c.as_ref());
        if mode == Mode::Eval {
            let conv = child(i).and_then(as_conv);
            if let Some((conv, norm)) = conv.zip(child(i + 1).and_then(as_batch_norm)) {
                let relu = if child(i + 2).is_some_and(is_relu) { ThenRelu::Yes } else { ThenRelu::No };
                let covered = if relu == ThenRelu::Yes { 3 } else { 2 };
                return Some((conv_batch_norm(conv, norm, h, mode, relu), covered));
            }
        }
        let layer = relu_fusion(self.children[i].1.as_ref())?;
        if !self.children.get(i + 1).is_some_and(|(_, next)| is_relu(next.as_ref())) {
            return None;
        }
        let dropout = self.children.get(i + 2).and_then(|(_, next)| as_dropout(next.as_ref()));
        if let Some(fused) = dropout.and_then(|d| layer.forward_relu_dropout(h, d, mode.child(i + 2))) {
            return Some((fused, 3));
        }
        layer.forward_relu(h).map(|fused| (fused, 2))
    }
}

impl Module for Sequential {
    /// Runs the children in order; a `Conv2d` or `Dense` that a [`crate::ReLU`] follows
    /// runs with the ReLU as one op (`conv2d_relu`, `linear_relu`), and a `Dense` with
    /// the [`crate::Dropout`] after that ReLU too in training (`linear_relu_dropout`).
    /// In evaluation a `Conv2d` followed by a [`crate::BatchNorm2d`] (and a ReLU) is one
    /// convolution with the normalization folded into its kernel and bias.
    fn forward(&self, x: &Tensor, mode: Mode) -> Tensor {
        let mut h = x.clone();
        let mut i = 0;
        while let Some((_, child)) = self.children.get(i) {
            match self.fused_forward(i, &h, mode) {
                Some((fused, covered)) => {
                    h = fused;
                    i += covered;
                }
                None => {
                    h = child.forward(&h, mode.child(i));
                    i += 1;
                }
            }
        }
        h
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape> {
        self.children.iter().try_fold(input.clone(), |shape, (_, child)| child.output_shape(&shape))
    }

    fn summary_style(&self) -> SummaryStyle {
        SummaryStyle::Row("sequential".into())
    }

    fn summarize(&self, input: &Shape, rows: &mut Vec<SummaryRow>) -> Result<Shape> {
        self.children.iter().try_fold(input.clone(), |shape, (_, child)| child.summarize(&shape, rows))
    }

    fn children(&self) -> Vec<(&str, &dyn Module)> {
        self.children.iter().map(|(name, child)| (name.as_str(), child.as_ref())).collect()
    }

    fn children_mut(&mut self) -> Vec<(&str, &mut dyn Module)> {
        self.children
            .iter_mut()
            .map(|(name, child)| (name.as_str(), child.as_mut() as &mut dyn Module))
            .collect()
    }
}
