//! Ready-made models. `alexnet` is the model of the reference Keras notebook, laid out
//! as PyTorch's `features`/`classifier` pair so its checkpoints load into PyTorch.

use kiln_tensor::Shape;

use crate::{
    Conv2d, Dense, Dropout, Flatten, Initializer, MaxPool2d, Module, NnError, ReLU, Result, Sequential,
};

/// The convolutional part of AlexNet for `in_channels` input channels.
fn alexnet_features(init: &mut Initializer, in_channels: usize) -> Sequential {
    Sequential::new()
        .push(Conv2d::new(init, in_channels, 96, 11).with_stride(4))
        .push(ReLU)
        .push(MaxPool2d::new(3, 2))
        .push(Conv2d::new(init, 96, 256, 5).with_padding(2))
        .push(ReLU)
        .push(MaxPool2d::new(3, 2))
        .push(Conv2d::new(init, 256, 384, 3).with_padding(1))
        .push(ReLU)
        .push(Conv2d::new(init, 384, 384, 3).with_padding(1))
        .push(ReLU)
        .push(Conv2d::new(init, 384, 256, 3).with_padding(1))
        .push(ReLU)
        .push(MaxPool2d::new(3, 2))
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
    let features = alexnet_features(init, in_channels);
    let fits = |s: usize| features.output_shape(&Shape::from([in_channels, s, s]));
    let flat = fits(image_size)
        .map_err(|_| {
            let minimum = (image_size..=4096).find(|&s| fits(s).is_ok()).unwrap_or(usize::MAX);
            NnError::Shape(format!(
                "image size {image_size} is too small for AlexNet's three poolings: the minimum is {minimum}"
            ))
        })?
        .numel();
    let classifier = Sequential::new()
        .push(Flatten)
        .push(Dense::new(init, flat, 4096))
        .push(ReLU)
        .push(Dropout::new(0.5))
        .push(Dense::new(init, 4096, 4096))
        .push(ReLU)
        .push(Dropout::new(0.5))
        .push(Dense::new(init, 4096, classes));
    Ok(Sequential::new().push_named("features", features).push_named("classifier", classifier))
}
