//! ResNet (He et al., 2015) with torchvision's parameter names, so a checkpoint loads
//! into `torchvision.models.resnet18` (its first convolution made to fit the input
//! channels, and for the small-image stem a 3×3 convolution without the max-pool).

use kiln_tensor::{Shape, Tensor};

use crate::layers::{ThenRelu, conv_batch_norm};
use crate::{
    AdaptiveAvgPool2d, BatchNorm, BatchNorm2d, Conv2d, Dense, Flatten, Initializer, MaxPool2d, Mode, Module,
    NnError, ReLU, Result, Sequential, SummaryStyle,
};

/// The first layers of a ResNet, before its residual stages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stem {
    /// ImageNet's: a 7×7 stride-2 convolution and a 3×3 stride-2 max-pool (the input
    /// shrinks 4× before the first stage).
    ImageNet,
    /// For small images such as 28×28 or 32×32: a 3×3 stride-1 convolution and no
    /// max-pool (the common CIFAR adaptation), so the last stage still sees 4×4.
    SmallImage,
}

/// Channels of the four stages of ResNet-18 and -34.
const STAGE_CHANNELS: [usize; 4] = [64, 128, 256, 512];

/// ResNet-18's blocks per stage.
pub const RESNET18_BLOCKS: [usize; 4] = [2, 2, 2, 2];

/// ResNet-34's blocks per stage.
pub const RESNET34_BLOCKS: [usize; 4] = [3, 4, 6, 3];

/// torchvision's `BasicBlock`: two 3×3 convolutions with batch norm, added to the
/// input (through a 1×1 convolution and batch norm when the shape changes), then ReLU.
pub struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    downsample: Option<Sequential>,
}

impl BasicBlock {
    /// A block from `in_channels` to `out_channels`, its first convolution of stride
    /// `stride`.
    pub fn new(init: &mut Initializer, in_channels: usize, out_channels: usize, stride: usize) -> Self {
        let device = init.device().clone();
        let conv3 = |init: &mut Initializer, from, stride| {
            Conv2d::new(init, from, out_channels, 3).with_stride(stride).with_padding(1).without_bias()
        };
        let downsample = (stride != 1 || in_channels != out_channels).then(|| {
            Sequential::new()
                .push(Conv2d::new(init, in_channels, out_channels, 1).with_stride(stride).without_bias())
                .push(BatchNorm2d::new(&device, out_channels))
        });
        BasicBlock {
            conv1: conv3(init, in_channels, stride),
            bn1: BatchNorm2d::new(&device, out_channels),
            conv2: conv3(init, out_channels, 1),
            bn2: BatchNorm2d::new(&device, out_channels),
            downsample,
        }
    }
}

impl Module for BasicBlock {
    fn forward(&self, x: &Tensor, mode: Mode) -> Tensor {
        let h = conv_batch_norm(&self.conv1, &self.bn1, x, mode, ThenRelu::Yes);
        let h = conv_batch_norm(&self.conv2, &self.bn2, &h, mode, ThenRelu::No);
        let identity = match &self.downsample {
            Some(downsample) => downsample.forward(x, mode),
            None => x.clone(),
        };
        h.add_relu(&identity)
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape> {
        let output = self.conv2.output_shape(&self.conv1.output_shape(input)?)?;
        let identity = match &self.downsample {
            Some(downsample) => downsample.output_shape(input)?,
            None => input.clone(),
        };
        if identity != output {
            return Err(NnError::Shape(format!(
                "residual block: its branch gives {output} but its shortcut {identity} for input {input}"
            )));
        }
        Ok(output)
    }

    fn summary_style(&self) -> SummaryStyle {
        let [out, _, _, _] = self.conv1.weight().dims()[..] else { unreachable!("a conv weight has rank 4") };
        let stride = if self.downsample.is_some() { ", projection" } else { "" };
        SummaryStyle::Row(format!("basic block 3×3, {out}{stride}"))
    }

    fn children(&self) -> Vec<(&str, &dyn Module)> {
        let mut children: Vec<(&str, &dyn Module)> =
            vec![("conv1", &self.conv1), ("bn1", &self.bn1), ("conv2", &self.conv2), ("bn2", &self.bn2)];
        if let Some(downsample) = &self.downsample {
            children.push(("downsample", downsample));
        }
        children
    }

    fn children_mut(&mut self) -> Vec<(&str, &mut dyn Module)> {
        let mut children: Vec<(&str, &mut dyn Module)> = vec![
            ("conv1", &mut self.conv1),
            ("bn1", &mut self.bn1),
            ("conv2", &mut self.conv2),
            ("bn2", &mut self.bn2),
        ];
        if let Some(downsample) = &mut self.downsample {
            children.push(("downsample", downsample));
        }
        children
    }
}

/// A ResNet of [`BasicBlock`]s: `blocks[i]` blocks in stage `i` (64, 128, 256, 512
/// channels; stages 2–4 halve the size), then global average pooling and a dense layer
/// to `classes` logits. Parameter names are torchvision's (`conv1.weight`,
/// `layer1.0.bn1.running_mean`, `layer2.0.downsample.0.weight`, `fc.bias`).
pub fn resnet(
    init: &mut Initializer,
    blocks: [usize; 4],
    in_channels: usize,
    classes: usize,
    stem: Stem,
) -> Sequential {
    let device = init.device().clone();
    let mut model = match stem {
        Stem::ImageNet => Sequential::new().push_named(
            "conv1",
            Conv2d::new(init, in_channels, 64, 7).with_stride(2).with_padding(3).without_bias(),
        ),
        Stem::SmallImage => Sequential::new()
            .push_named("conv1", Conv2d::new(init, in_channels, 64, 3).with_padding(1).without_bias()),
    }
    .push_named("bn1", BatchNorm2d::new(&device, 64))
    .push_named("relu", ReLU);
    if stem == Stem::ImageNet {
        model = model.push_named("maxpool", MaxPool2d::new(3, 2).with_padding(1));
    }
    let mut channels = 64;
    for (stage, (&count, &width)) in blocks.iter().zip(&STAGE_CHANNELS).enumerate() {
        let mut layer = Sequential::new();
        for block in 0..count {
            let stride = if stage > 0 && block == 0 { 2 } else { 1 };
            layer = layer.push(BasicBlock::new(init, channels, width, stride));
            channels = width;
        }
        model = model.push_named(&format!("layer{}", stage + 1), layer);
    }
    model
        .push_named("avgpool", AdaptiveAvgPool2d::new(1))
        .push_named("flatten", Flatten)
        .push_named("fc", Dense::new(init, channels, classes))
}

/// ResNet-18 (see [`resnet`]): 11.2 M parameters for 1 input channel and 10 classes.
pub fn resnet18(init: &mut Initializer, in_channels: usize, classes: usize, stem: Stem) -> Sequential {
    resnet(init, RESNET18_BLOCKS, in_channels, classes, stem)
}
