//! Ready-made models, each with PyTorch's parameter names so their checkpoints load
//! into the matching PyTorch module: AlexNet (the reference Keras notebook's), ResNet
//! (torchvision's `resnet18`) and a Vision Transformer (torchvision's
//! `VisionTransformer`).

mod alexnet;
mod resnet;
mod vit;

pub use alexnet::{Footprint, alexnet, alexnet_footprint};
pub use resnet::{BasicBlock, RESNET18_BLOCKS, RESNET34_BLOCKS, Stem, resnet, resnet18};
pub use vit::{ConvStemLayer, FASHION_MNIST_STEM, PatchEmbedding, VisionTransformer, VitConfig};
