//! The ready-made models beyond AlexNet on every device: ResNet-18 and the Vision
//! Transformer have torchvision's parameter names and counts, give logits of the right
//! shape for both ResNet stems, summarize, and learn a small task. (Their values
//! against torchvision are checked by `scripts/check_torch_interop.py`.)

#[macro_use]
mod common;

use kiln::nn::models::{self, ConvStemLayer, PatchEmbedding, Stem, VisionTransformer, VitConfig};
use kiln::nn::{Adam, BatchNorm2d, Conv2d, Initializer, Mode, Module, Optimizer, ReLU, Sequential};
use kiln::prelude::*;

/// A ViT small enough for a test: 8×8 images in 4×4 patches, 2 blocks of width 16.
const TINY_VIT: VitConfig = VitConfig {
    image_size: 8,
    patch_size: 4,
    in_channels: 1,
    layers: 2,
    heads: 2,
    hidden_dim: 16,
    mlp_dim: 32,
    classes: 4,
    dropout: 0.0,
    patch_embedding: PatchEmbedding::Linear,
};

/// A convolutional stem for [`TINY_VIT`]: 8×8 images to its 2×2 grid of 4×4 patches.
const TINY_STEM: [ConvStemLayer; 2] = [
    ConvStemLayer { out_channels: 4, kernel_size: 3, stride: 2 },
    ConvStemLayer { out_channels: 8, kernel_size: 3, stride: 2 },
];

/// The loss before and after `steps` Adam steps on `x`, `y`.
fn learn(model: &dyn Module, x: &Tensor, y: &Tensor, steps: usize, lr: f32) -> (f32, f32) {
    let mut adam = Adam::new(lr);
    let loss = |mode| model.forward(x, mode).cross_entropy(y);
    let before = no_grad(|| loss(Mode::Eval)).item().unwrap();
    for step in 0..steps {
        adam.step(model, &loss(Mode::train(step as u64)).backward());
    }
    (before, no_grad(|| loss(Mode::Eval)).item().unwrap())
}

test_on_every_device! {
    fn resnet18_has_torchvisions_names_and_sizes(device: &Device) {
        let mut init = Initializer::new(device, 1);
        let small = models::resnet18(&mut init, 1, 10, Stem::SmallImage);
        // torchvision's resnet18(num_classes=10) has 11,181,642 parameters with its
        // 3-channel 7×7 stem (9,408 weights); a 1-channel 3×3 one has 576.
        assert_eq!(small.parameter_count(), 11_181_642 - 9_408 + 576);
        let names: Vec<String> = small.named_parameters().into_iter().map(|(n, _)| n).collect();
        let buffers: Vec<String> = small.named_buffers().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names.len() + buffers.len(), 122, "torchvision's state_dict has 122 entries");
        for name in ["conv1.weight", "bn1.bias", "layer1.0.conv2.weight", "layer2.0.downsample.0.weight",
                     "layer2.0.downsample.1.weight", "layer4.1.bn2.weight", "fc.weight", "fc.bias"] {
            assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
        }
        assert!(buffers.iter().any(|n| n == "layer3.0.downsample.1.running_var"), "{buffers:?}");
        assert!(!names.iter().any(|n| n == "layer1.0.downsample.0.weight"), "stage 1 keeps its shape");
        let logits = small.forward(&Tensor::randn([2, 1, 28, 28], 3, device), Mode::Eval);
        assert_eq!(logits.dims(), &[2, 10]);
        let summary = small.summary(&Shape::from([1, 28, 28])).unwrap().to_string();
        assert!(summary.contains("basic block") && summary.contains("11,172,810"), "{summary}");

        let imagenet = models::resnet18(&mut init, 3, 7, Stem::ImageNet);
        assert_eq!(imagenet.parameter_count(), 11_181_642 - 513 * 3, "torchvision's with 7 classes");
        let logits = imagenet.forward(&Tensor::randn([1, 3, 64, 64], 4, device), Mode::Eval);
        assert_eq!(logits.dims(), &[1, 7]);
    }

    fn a_small_resnet_learns_the_quadrant_task(device: &Device) {
        let mut init = Initializer::new(device, 2);
        let model = models::resnet(&mut init, [1, 0, 0, 0], 1, 4, Stem::SmallImage);
        let (x, y) = common::quadrant_images(device, 16);
        let (before, after) = learn(&model, &x, &y, 40, 0.01);
        assert!(after < 0.3 * before, "loss {before} -> {after}");
    }

    fn the_vision_transformer_has_torchvisions_names_and_learns(device: &Device) {
        let mut init = Initializer::new(device, 3);
        let vit = VisionTransformer::new(&mut init, VitConfig::FASHION_MNIST).unwrap();
        // torchvision's VisionTransformer(28, 4, 6, 4, 128, 256, num_classes=10,
        // conv_stem_configs=[ConvStemConfig(64, 3, 2), ConvStemConfig(128, 3, 2)]) with a
        // 1-channel first convolution has 894,154 parameters.
        assert_eq!(vit.parameter_count(), 894_154);
        let names: Vec<String> = vit.named_parameters().into_iter().map(|(n, _)| n).collect();
        for name in ["class_token", "conv_proj.conv_bn_relu_0.0.weight", "conv_proj.conv_bn_relu_1.1.bias",
                     "conv_proj.conv_last.weight", "encoder.pos_embedding",
                     "encoder.layers.encoder_layer_5.self_attention.out_proj.bias",
                     "encoder.layers.encoder_layer_0.mlp.3.weight", "encoder.ln.weight", "heads.head.weight"] {
            assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
        }
        let logits = vit.forward(&Tensor::randn([2, 1, 28, 28], 5, device), Mode::Eval);
        assert_eq!(logits.dims(), &[2, 10]);
        let summary = vit.summary(&Shape::from([1, 28, 28])).unwrap().to_string();
        assert!(summary.contains("encoder block") && summary.contains("894,154"), "{summary}");

        let (x, y) = common::quadrant_images(device, 16);
        let linear = VisionTransformer::new(&mut init, TINY_VIT).unwrap();
        assert!(linear.named_parameters().iter().any(|(n, _)| n == "conv_proj.weight"));
        let stem = PatchEmbedding::ConvStem(&TINY_STEM);
        let conv_stem = VisionTransformer::new(&mut init, VitConfig { patch_embedding: stem, ..TINY_VIT }).unwrap();
        for tiny in [&linear, &conv_stem] {
            let (before, after) = learn(tiny, &x, &y, 30, 0.01);
            assert!(after < 0.3 * before, "loss {before} -> {after}");
        }
    }

    fn in_evaluation_a_convolution_and_its_batch_norm_run_folded_as_the_layers_would(device: &Device) {
        let mut init = Initializer::new(device, 6);
        let plain = Sequential::new()
            .push(Conv2d::new(&mut init, 3, 4, 3).with_padding(1))
            .push(BatchNorm2d::new(device, 4))
            .push(ReLU);
        let grouped = Sequential::new()
            .push(Conv2d::grouped(&mut init, 4, 6, 3, 2).with_stride(2).without_bias())
            .push(BatchNorm2d::new(device, 6));
        let x = Tensor::randn([2, 3, 6, 6], 7, device);
        for step in 0..3 {
            // Training passes move the running statistics off their defaults.
            grouped.forward(&plain.forward(&x, Mode::train(step)), Mode::train(step));
        }
        let folded = grouped.forward(&plain.forward(&x, Mode::Eval), Mode::Eval);
        let layer_by_layer = [&plain, &grouped]
            .iter()
            .flat_map(|s| s.children())
            .fold(x.clone(), |h, (_, layer)| layer.forward(&h, Mode::Eval));
        let mismatched = Sequential::new().push(Conv2d::new(&mut init, 3, 4, 3)).push(BatchNorm2d::new(device, 5));
        let run = std::panic::AssertUnwindSafe(|| mismatched.forward(&x, Mode::Eval));
        assert!(std::panic::catch_unwind(run).is_err(), "a norm of other channels is refused, not folded");
        let (folded, want) = (folded.to_vec().unwrap(), layer_by_layer.to_vec().unwrap());
        assert_eq!(folded.len(), 2 * 6 * 2 * 2);
        for (i, (a, b)) in folded.iter().zip(&want).enumerate() {
            assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "[{i}] folded {a} vs layer by layer {b}");
        }
    }

    fn impossible_vision_transformers_are_refused(device: &Device) {
        let mut init = Initializer::new(device, 4);
        let err = VisionTransformer::new(&mut init, VitConfig { patch_size: 5, ..TINY_VIT }).err().unwrap();
        assert!(err.to_string().contains("patch size 5 does not divide image size 8"), "{err}");
        let err = VisionTransformer::new(&mut init, VitConfig { heads: 3, ..TINY_VIT }).err().unwrap();
        assert!(err.to_string().contains("3 heads do not divide the width 16"), "{err}");
        let one_conv = PatchEmbedding::ConvStem(&TINY_STEM[..1]);
        let err = VisionTransformer::new(&mut init, VitConfig { patch_embedding: one_conv, ..TINY_VIT }).err().unwrap();
        assert!(err.to_string().contains("stem makes a 4×4 grid of 8×8 images, patches of 4 need 2×2"), "{err}");
    }
}
