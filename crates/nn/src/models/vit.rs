//! The Vision Transformer (Dosovitskiy et al., 2020) with torchvision's
//! `VisionTransformer` layout and parameter names: patches embedded by a strided
//! convolution or a small convolutional stem (`conv_proj`), a class token, a learned
//! position embedding, pre-norm encoder blocks of multi-head self-attention and a GELU
//! MLP, a final layer norm, and a dense head on the class token.

use kiln_tensor::{Normal, Shape, Tensor};

use crate::{
    BatchNorm2d, Conv2d, Dense, Dropout, GELU, Initializer, LayerNorm, Mode, Module, MultiheadAttention,
    NnError, ReLU, Result, Sequential, SummaryRow, SummaryStyle,
};

/// torchvision's layer-norm epsilon in the Vision Transformer.
const LAYER_NORM_EPS: f32 = 1e-6;

/// Standard deviation of the position embedding's initial values (torchvision's).
const POSITION_STD: f32 = 0.02;

/// One convolution of a convolutional stem (torchvision's `ConvStemConfig`): a
/// `kernel_size`² convolution with `stride` and padding `(kernel_size - 1) / 2`, no
/// bias, then batch norm and ReLU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvStemLayer {
    /// Output channels.
    pub out_channels: usize,
    /// Side of the square kernel.
    pub kernel_size: usize,
    /// Step between windows.
    pub stride: usize,
}

/// How a Vision Transformer turns an image into patch tokens (`conv_proj`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchEmbedding {
    /// One convolution with kernel and stride `patch_size`: each patch projected
    /// linearly (the original ViT; torchvision's default, named `conv_proj.weight`).
    Linear,
    /// Convolutions with batch norm and ReLU, then a 1×1 convolution to the width
    /// (Xiao et al., 2021, "Early convolutions help transformers see better";
    /// torchvision's `conv_stem_configs`, named `conv_proj.conv_bn_relu_{i}.0/1` and
    /// `conv_proj.conv_last`). Their strides bring the image down to
    /// `image_size / patch_size` on a side.
    ConvStem(&'static [ConvStemLayer]),
}

impl PatchEmbedding {
    /// The `conv_proj` module for `config`.
    fn build(&self, init: &mut Initializer, config: &VitConfig) -> Box<dyn Module> {
        let width = config.hidden_dim;
        match self {
            PatchEmbedding::Linear => Box::new(
                Conv2d::new(init, config.in_channels, width, config.patch_size)
                    .with_stride(config.patch_size),
            ),
            PatchEmbedding::ConvStem(layers) => {
                let device = init.device().clone();
                let mut stem = Sequential::new();
                let mut channels = config.in_channels;
                for (i, layer) in layers.iter().enumerate() {
                    let conv = Conv2d::new(init, channels, layer.out_channels, layer.kernel_size)
                        .with_stride(layer.stride)
                        .with_padding((layer.kernel_size - 1) / 2)
                        .without_bias();
                    let block = Sequential::new()
                        .push(conv)
                        .push(BatchNorm2d::new(&device, layer.out_channels))
                        .push(ReLU);
                    stem = stem.push_named(&format!("conv_bn_relu_{i}"), block);
                    channels = layer.out_channels;
                }
                Box::new(stem.push_named("conv_last", Conv2d::new(init, channels, width, 1)))
            }
        }
    }
}

/// Side of the grid that the convolutional stem `layers` makes of `image_size`-sided
/// images.
fn stem_grid_side(layers: &[ConvStemLayer], image_size: usize) -> usize {
    layers.iter().fold(image_size, |side, layer| {
        let padding = (layer.kernel_size - 1) / 2;
        (side + 2 * padding).saturating_sub(layer.kernel_size) / layer.stride + 1
    })
}

/// The convolutional stem of [`VitConfig::FASHION_MNIST`]: two stride-2 3×3
/// convolutions (64 and 128 channels) take 28×28 images to the 7×7 grid of 4×4 patches.
pub const FASHION_MNIST_STEM: [ConvStemLayer; 2] = [
    ConvStemLayer { out_channels: 64, kernel_size: 3, stride: 2 },
    ConvStemLayer { out_channels: 128, kernel_size: 3, stride: 2 },
];

/// The shape of a Vision Transformer (torchvision's `VisionTransformer` arguments).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VitConfig {
    /// Side of the square input images.
    pub image_size: usize,
    /// Side of the square patches (divides `image_size`).
    pub patch_size: usize,
    /// Channels of the input images.
    pub in_channels: usize,
    /// Encoder blocks.
    pub layers: usize,
    /// Attention heads (divide `hidden_dim`).
    pub heads: usize,
    /// Width of the tokens.
    pub hidden_dim: usize,
    /// Width of each block's MLP.
    pub mlp_dim: usize,
    /// Output classes.
    pub classes: usize,
    /// Dropout after the position embedding, the attention and the MLP layers.
    pub dropout: f32,
    /// How images become patch tokens.
    pub patch_embedding: PatchEmbedding,
}

impl VitConfig {
    /// A small ViT for 28×28 grayscale images in 10 classes: a convolutional stem
    /// ([`FASHION_MNIST_STEM`]) to 7×7 = 49 tokens of 4×4 patches, 6 blocks of width 128
    /// with 4 heads and MLPs of 256 (0.9 M parameters).
    pub const FASHION_MNIST: VitConfig = VitConfig {
        image_size: 28,
        patch_size: 4,
        in_channels: 1,
        layers: 6,
        heads: 4,
        hidden_dim: 128,
        mlp_dim: 256,
        classes: 10,
        dropout: 0.0,
        patch_embedding: PatchEmbedding::ConvStem(&FASHION_MNIST_STEM),
    };

    /// Tokens per image: the patches and the class token.
    pub fn sequence_length(&self) -> usize {
        (self.image_size / self.patch_size).pow(2) + 1
    }

    /// Fails with a one-line reason when the sizes do not fit together.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(NnError::Shape(format!("vision transformer: {reason}")));
        if self.patch_size == 0 || !self.image_size.is_multiple_of(self.patch_size) {
            return bad(format!(
                "patch size {} does not divide image size {}",
                self.patch_size, self.image_size
            ));
        }
        if self.heads == 0 || !self.hidden_dim.is_multiple_of(self.heads) {
            return bad(format!("{} heads do not divide the width {}", self.heads, self.hidden_dim));
        }
        if self.layers == 0 || self.mlp_dim == 0 || self.classes == 0 || self.in_channels == 0 {
            return bad("layers, MLP width, classes and channels must be at least 1".into());
        }
        if let PatchEmbedding::ConvStem(layers) = self.patch_embedding {
            if layers.iter().any(|l| l.out_channels == 0 || l.kernel_size == 0 || l.stride == 0) {
                return bad(
                    "the convolutional stem's channels, kernel sizes and strides must be at least 1".into()
                );
            }
            let (side, patches) =
                (stem_grid_side(layers, self.image_size), self.image_size / self.patch_size);
            if side != patches {
                return bad(format!(
                    "the convolutional stem makes a {side}×{side} grid of {0}×{0} images, patches of {1} need {patches}×{patches}",
                    self.image_size, self.patch_size
                ));
            }
        }
        Ok(())
    }
}

/// One pre-norm encoder block (torchvision's `EncoderBlock`):
/// `x + attention(ln_1(x))`, then `x + mlp(ln_2(x))`.
struct EncoderBlock {
    ln_1: LayerNorm,
    self_attention: MultiheadAttention,
    dropout: Dropout,
    ln_2: LayerNorm,
    mlp: Sequential,
}

impl EncoderBlock {
    fn new(init: &mut Initializer, config: &VitConfig) -> Self {
        let device = init.device().clone();
        let width = config.hidden_dim;
        // torchvision's MLPBlock: 0 Linear, 1 GELU, 2 Dropout, 3 Linear, 4 Dropout.
        let mlp = Sequential::new()
            .push(Dense::new(init, width, config.mlp_dim))
            .push(GELU::default())
            .push(Dropout::new(config.dropout))
            .push(Dense::new(init, config.mlp_dim, width))
            .push(Dropout::new(config.dropout));
        EncoderBlock {
            ln_1: LayerNorm::new(&device, &[width]).with_eps(LAYER_NORM_EPS),
            self_attention: MultiheadAttention::new(init, width, config.heads).batch_first(),
            dropout: Dropout::new(config.dropout),
            ln_2: LayerNorm::new(&device, &[width]).with_eps(LAYER_NORM_EPS),
            mlp,
        }
    }
}

impl Module for EncoderBlock {
    fn forward(&self, x: &Tensor, mode: Mode) -> Tensor {
        let attended = self.self_attention.forward(&self.ln_1.forward(x, mode), mode);
        let x = x.add(&self.dropout.forward(&attended, mode));
        let mixed = self.mlp.forward(&self.ln_2.forward(&x, mode), mode);
        x.add(&mixed)
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape> {
        self.self_attention.output_shape(input)
    }

    fn summary_style(&self) -> SummaryStyle {
        SummaryStyle::Row("encoder block".into())
    }

    fn children(&self) -> Vec<(&str, &dyn Module)> {
        vec![
            ("ln_1", &self.ln_1),
            ("self_attention", &self.self_attention),
            ("ln_2", &self.ln_2),
            ("mlp", &self.mlp),
        ]
    }

    fn children_mut(&mut self) -> Vec<(&str, &mut dyn Module)> {
        vec![
            ("ln_1", &mut self.ln_1),
            ("self_attention", &mut self.self_attention),
            ("ln_2", &mut self.ln_2),
            ("mlp", &mut self.mlp),
        ]
    }
}

/// The encoder (torchvision's `Encoder`): the position embedding added, the blocks,
/// a final layer norm.
struct Encoder {
    pos_embedding: Tensor,
    dropout: Dropout,
    layers: Sequential,
    ln: LayerNorm,
}

impl Module for Encoder {
    fn forward(&self, x: &Tensor, mode: Mode) -> Tensor {
        let x = self.dropout.forward(&x.add(&self.pos_embedding), mode);
        self.ln.forward(&self.layers.forward(&x, mode), mode)
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape> {
        self.layers.output_shape(input)
    }

    fn summary_style(&self) -> SummaryStyle {
        SummaryStyle::Row("encoder".into())
    }

    fn summarize(&self, input: &Shape, rows: &mut Vec<SummaryRow>) -> Result<Shape> {
        self.layers.summarize(input, rows)
    }

    fn children(&self) -> Vec<(&str, &dyn Module)> {
        vec![("layers", &self.layers), ("ln", &self.ln)]
    }

    fn children_mut(&mut self) -> Vec<(&str, &mut dyn Module)> {
        vec![("layers", &mut self.layers), ("ln", &mut self.ln)]
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        f(&format!("{prefix}pos_embedding"), &self.pos_embedding);
        for (name, child) in self.children() {
            child.visit_parameters(&format!("{prefix}{name}."), f);
        }
    }

    fn visit_parameters_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor)) {
        f(&format!("{prefix}pos_embedding"), &mut self.pos_embedding);
        for (name, child) in self.children_mut() {
            child.visit_parameters_mut(&format!("{prefix}{name}."), f);
        }
    }
}

/// A Vision Transformer classifier of images `[C, H, W]`, laid out as torchvision's
/// `VisionTransformer` (names `conv_proj.weight`, `class_token`,
/// `encoder.pos_embedding`, `encoder.layers.encoder_layer_0.self_attention.in_proj_weight`,
/// `heads.head.bias`), so a checkpoint loads into it with `strict=True` once its
/// `conv_proj` takes `in_channels` channels.
pub struct VisionTransformer {
    config: VitConfig,
    conv_proj: Box<dyn Module>,
    class_token: Tensor,
    encoder: Encoder,
    heads: Sequential,
}

impl VisionTransformer {
    /// A ViT of `config`'s shape, initialized from `init` (the class token at zero and
    /// the position embedding normal with std 0.02, as torchvision does).
    pub fn new(init: &mut Initializer, config: VitConfig) -> Result<Self> {
        config.validate()?;
        let device = init.device().clone();
        let width = config.hidden_dim;
        let conv_proj = config.patch_embedding.build(init, &config);
        let mut layers = Sequential::new();
        for i in 0..config.layers {
            layers = layers.push_named(&format!("encoder_layer_{i}"), EncoderBlock::new(init, &config));
        }
        let position = Normal { mean: 0.0, std: POSITION_STD };
        let encoder = Encoder {
            pos_embedding: Tensor::normal(
                [1, config.sequence_length(), width],
                position,
                init.next_seed(),
                &device,
            )
            .with_requires_grad(),
            dropout: Dropout::new(config.dropout),
            layers,
            ln: LayerNorm::new(&device, &[width]).with_eps(LAYER_NORM_EPS),
        };
        Ok(VisionTransformer {
            config,
            conv_proj,
            class_token: Tensor::zeros([1, 1, width], &device).with_requires_grad(),
            encoder,
            heads: Sequential::new().push_named("head", Dense::new(init, width, config.classes)),
        })
    }

    /// The model's shape.
    pub fn config(&self) -> &VitConfig {
        &self.config
    }
}

impl Module for VisionTransformer {
    fn forward(&self, x: &Tensor, mode: Mode) -> Tensor {
        let n = x.dims()[0];
        let width = self.config.hidden_dim;
        let patches = self.conv_proj.forward(x, mode);
        let tokens = patches.reshape([n, width, self.config.sequence_length() - 1]).permute(&[0, 2, 1]);
        let class_tokens = self.class_token.broadcast_to([n, 1, width]);
        let encoded = self.encoder.forward(&Tensor::cat(&[&class_tokens, &tokens], 1), mode);
        self.heads.forward(&encoded.narrow(1, 0, 1).reshape([n, width]), mode)
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape> {
        let c = &self.config;
        if input.dims() != [c.in_channels, c.image_size, c.image_size] {
            return Err(NnError::Shape(format!(
                "vision transformer: expects images [{}, {}, {}], got {input}",
                c.in_channels, c.image_size, c.image_size
            )));
        }
        Ok(Shape::from([c.classes]))
    }

    fn summary_style(&self) -> SummaryStyle {
        SummaryStyle::Row("vision transformer".into())
    }

    fn summarize(&self, input: &Shape, rows: &mut Vec<SummaryRow>) -> Result<Shape> {
        let output = self.output_shape(input)?;
        let c = &self.config;
        let tokens = Shape::from([c.sequence_length(), c.hidden_dim]);
        let patch = match c.patch_embedding {
            PatchEmbedding::Linear => format!("patches {0}×{0} + class token + position", c.patch_size),
            PatchEmbedding::ConvStem(layers) => {
                format!("conv stem ({} convs) + class token + position", layers.len() + 1)
            }
        };
        let embedding =
            self.conv_proj.parameter_count() + self.class_token.numel() + self.encoder.pos_embedding.numel();
        rows.push(SummaryRow { layer: patch, output: tokens.clone(), params: embedding });
        self.encoder.summarize(&tokens, rows)?;
        let head = self.encoder.ln.parameter_count() + self.heads.parameter_count();
        rows.push(SummaryRow { layer: "layer norm + head".into(), output: output.clone(), params: head });
        Ok(output)
    }

    fn children(&self) -> Vec<(&str, &dyn Module)> {
        vec![("conv_proj", self.conv_proj.as_ref()), ("encoder", &self.encoder), ("heads", &self.heads)]
    }

    fn children_mut(&mut self) -> Vec<(&str, &mut dyn Module)> {
        vec![
            ("conv_proj", self.conv_proj.as_mut()),
            ("encoder", &mut self.encoder),
            ("heads", &mut self.heads),
        ]
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        f(&format!("{prefix}class_token"), &self.class_token);
        for (name, child) in self.children() {
            child.visit_parameters(&format!("{prefix}{name}."), f);
        }
    }

    fn visit_parameters_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor)) {
        f(&format!("{prefix}class_token"), &mut self.class_token);
        for (name, child) in self.children_mut() {
            child.visit_parameters_mut(&format!("{prefix}{name}."), f);
        }
    }
}
