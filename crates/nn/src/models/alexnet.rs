//! AlexNet, the model of the reference Keras notebook, laid out as PyTorch's
//! `features`/`classifier` pair so its checkpoints load into PyTorch, and
//! [`alexnet_footprint`], its size from shapes alone, so a program can check that a
//! configuration fits in memory before allocating anything.

use crate::{Conv2d, Dense, Dropout, Flatten, Initializer, MaxPool2d, NnError, ReLU, Result, Sequential};

/// One convolution of AlexNet's feature extractor (followed by ReLU), and whether a
/// max-pool follows it.
struct ConvStage {
    out_channels: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    pooled: bool,
}

/// The five convolutions of the notebook's AlexNet.
const ALEXNET_CONVS: [ConvStage; 5] = [
    ConvStage { out_channels: 96, kernel: 11, stride: 4, padding: 0, pooled: true },
    ConvStage { out_channels: 256, kernel: 5, stride: 1, padding: 2, pooled: true },
    ConvStage { out_channels: 384, kernel: 3, stride: 1, padding: 1, pooled: false },
    ConvStage { out_channels: 384, kernel: 3, stride: 1, padding: 1, pooled: false },
    ConvStage { out_channels: 256, kernel: 3, stride: 1, padding: 1, pooled: true },
];

/// AlexNet's max-pool window and stride.
const POOL_WINDOW: usize = 3;
const POOL_STRIDE: usize = 2;

/// Width of AlexNet's two hidden dense layers.
const HIDDEN: usize = 4096;

/// The convolutional part of AlexNet for `in_channels` input channels.
fn alexnet_features(init: &mut Initializer, in_channels: usize) -> Sequential {
    let mut features = Sequential::new();
    let mut channels = in_channels;
    for stage in &ALEXNET_CONVS {
        let conv = Conv2d::new(init, channels, stage.out_channels, stage.kernel)
            .with_stride(stage.stride)
            .with_padding(stage.padding);
        features = features.push(conv).push(ReLU);
        if stage.pooled {
            features = features.push(MaxPool2d::new(POOL_WINDOW, POOL_STRIDE));
        }
        channels = stage.out_channels;
    }
    features
}

/// AlexNet as in the reference notebook: five convolutions (96 11×11/4, 256 5×5 pad 2,
/// 384, 384, 256 3×3 pad 1) with ReLU, three 3/2 max-pools, then dense 4096 + ReLU +
/// dropout 0.5 twice and dense `classes` (logits). Parameter names are PyTorch's:
/// `features.{0,3,6,8,10}.*` and `classifier.{1,4,7}.*`.
///
/// Fails with the minimum size when `image_size` is too small for the three poolings.
pub fn alexnet(
    init: &mut Initializer,
    in_channels: usize,
    classes: usize,
    image_size: usize,
) -> Result<Sequential> {
    let flat = alexnet_footprint(in_channels, classes, image_size)?.flattened;
    let features = alexnet_features(init, in_channels);
    let classifier = Sequential::new()
        .push(Flatten)
        .push(Dense::new(init, flat, HIDDEN))
        .push(ReLU)
        .push(Dropout::new(0.5))
        .push(Dense::new(init, HIDDEN, HIDDEN))
        .push(ReLU)
        .push(Dropout::new(0.5))
        .push(Dense::new(init, HIDDEN, classes));
    Ok(Sequential::new().push_named("features", features).push_named("classifier", classifier))
}

/// The size of an AlexNet, computed from shapes without building it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footprint {
    /// Trainable parameters (weights and biases).
    pub parameters: usize,
    /// Values of every layer's output for one image, summed over the layers (what a
    /// training step keeps for the backward pass, per image).
    pub activations_per_image: usize,
    /// Values entering the classifier per image (the flattened features).
    pub flattened: usize,
}

/// Why a size has no AlexNet.
enum Fault {
    /// The poolings leave nothing.
    TooSmall,
    /// A count overflows.
    TooLarge,
}

/// The parameter count and activation size of `alexnet(_, in_channels, classes,
/// image_size)`, from shapes alone (nothing is allocated). Fails with the minimum size
/// when `image_size` is too small, and when the sizes overflow.
pub fn alexnet_footprint(in_channels: usize, classes: usize, image_size: usize) -> Result<Footprint> {
    measure(in_channels, classes, image_size).map_err(|fault| match fault {
        Fault::TooSmall => {
            let minimum = (image_size..=4096).find(|&s| measure(in_channels, classes, s).is_ok());
            NnError::Shape(format!(
                "image size {image_size} is too small for AlexNet's three poolings: the minimum is {}",
                minimum.unwrap_or(usize::MAX)
            ))
        }
        Fault::TooLarge => NnError::Shape(format!("image size {image_size} is too large for AlexNet")),
    })
}

/// [`alexnet_footprint`] with checked arithmetic throughout.
fn measure(in_channels: usize, classes: usize, image_size: usize) -> std::result::Result<Footprint, Fault> {
    let checked = |value: Option<usize>| value.ok_or(Fault::TooLarge);
    let window = |len: usize, window: usize, stride: usize, padding: usize| {
        let padded = checked(len.checked_add(2 * padding))?;
        if padded < window {
            return Err(Fault::TooSmall);
        }
        Ok((padded - window) / stride + 1)
    };
    let volume =
        |side: usize, channels: usize| checked(side.checked_mul(side).and_then(|p| p.checked_mul(channels)));
    let (mut side, mut channels) = (image_size, in_channels);
    let (mut parameters, mut activations) = (0usize, 0usize);
    for stage in &ALEXNET_CONVS {
        let weights = (channels * stage.kernel * stage.kernel + 1) * stage.out_channels;
        parameters = checked(parameters.checked_add(weights))?;
        side = window(side, stage.kernel, stage.stride, stage.padding)?;
        channels = stage.out_channels;
        // The convolution's output and its ReLU's.
        let outputs = checked(volume(side, channels)?.checked_mul(2))?;
        activations = checked(activations.checked_add(outputs))?;
        if stage.pooled {
            side = window(side, POOL_WINDOW, POOL_STRIDE, 0)?;
            activations = checked(activations.checked_add(volume(side, channels)?))?;
        }
    }
    let flattened = volume(side, channels)?;
    for (inputs, outputs) in [(flattened, HIDDEN), (HIDDEN, HIDDEN), (HIDDEN, classes)] {
        parameters = checked(inputs.checked_mul(outputs).and_then(|w| parameters.checked_add(w + outputs)))?;
    }
    // Dense, ReLU and dropout outputs of the two hidden layers, then the logits.
    activations = checked(activations.checked_add(6 * HIDDEN + classes))?;
    Ok(Footprint { parameters, activations_per_image: activations, flattened })
}
