//! The Rust half of `scripts/check_torch_interop.py`: moves AlexNet weights and one
//! forward pass between Kiln and PyTorch through safetensors files in a directory.
//!
//! - `export DIR`: writes `DIR/kiln_alexnet.safetensors` (a checkpoint with SGD
//!   momentum state) and `DIR/kiln_io.safetensors` (`input`, `output` in eval mode).
//! - `import DIR`: loads `DIR/torch_alexnet.safetensors` (saved by PyTorch) and
//!   `DIR/torch_io.safetensors` (`input`), writes Kiln's output to
//!   `DIR/kiln_on_torch_weights.safetensors`.
//! - `export-layers DIR` and `import-layers DIR`: the same for a small model of the
//!   newer layers (BatchNorm2d after a training step, GELU, AvgPool2d, GroupNorm, a
//!   grouped dilated Conv2d, AdaptiveAvgPool2d, LayerNorm, SiLU), files `*_layers.safetensors` and
//!   `*_layers_io.safetensors`; `export-layers` also writes an Embedding and a batch-first
//!   `MultiheadAttention(16, 4)` (`kiln_attention*.safetensors`).
//! - `export-models DIR` and `import-models DIR`: the same for ResNet-18 (1 channel,
//!   small-image stem, batch-norm statistics moved by a training pass) and the
//!   Fashion-MNIST Vision Transformer, files `{kiln,torch}_{resnet18,vit}.safetensors`,
//!   `kiln_{resnet18,vit}_io.safetensors`, `torch_models_io.safetensors` and
//!   `kiln_on_torch_{resnet18,vit}.safetensors`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln_cpu::CpuDevice;
use kiln_nn::{
    AdaptiveAvgPool2d, AvgPool2d, BatchNorm2d, Conv2d, Dense, Embedding, Flatten, GELU, GroupNorm,
    Initializer, LayerNorm, Mode, Module, MultiheadAttention, Optimizer, Sequential, Sgd, SiLU, checkpoint,
    models,
};
use kiln_tensor::{Device, Normal, Tensor};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

const IMAGE: usize = 67;

fn alexnet(seed: u64) -> Sequential {
    models::alexnet(&mut Initializer::new(&Device::cpu(), seed), 1, 10, IMAGE).expect("67 fits AlexNet")
}

fn write_tensors(path: &Path, tensors: &[(&str, &Tensor)]) -> Result<(), Box<dyn std::error::Error>> {
    let raw: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, t)| {
            Ok((n.to_string(), t.dims().to_vec(), t.to_vec()?.iter().flat_map(|v| v.to_le_bytes()).collect()))
        })
        .collect::<Result<_, kiln_tensor::KilnError>>()?;
    let views: Vec<(String, TensorView<'_>)> = raw
        .iter()
        .map(|(n, s, b)| Ok((n.clone(), TensorView::new(Dtype::F32, s.clone(), b)?)))
        .collect::<Result<_, safetensors::SafeTensorError>>()?;
    std::fs::write(path, safetensors::serialize(views, None)?)?;
    Ok(())
}

fn read_tensor(path: &Path, name: &str) -> Result<Tensor, Box<dyn std::error::Error>> {
    let bytes = std::fs::read(path)?;
    let file = SafeTensors::deserialize(&bytes)?;
    let view = file.tensor(name)?;
    let data = view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    Ok(Tensor::from_vec(view.shape().to_vec(), data, &Device::cpu()))
}

fn export(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let model = alexnet(11);
    let device = Device::cpu();
    let mut sgd = Sgd::new(0.01).with_momentum(0.9);
    let x = Tensor::rand_uniform([2, 1, IMAGE, IMAGE], 0.0..1.0, 5, &device);
    let labels = Tensor::from_i32([2], vec![3, 7], &device);
    sgd.step(&model, &model.forward(&x, Mode::train(1)).cross_entropy(&labels).backward());
    let meta = BTreeMap::from([("image_size".to_string(), IMAGE.to_string())]);
    checkpoint::save(&dir.join("kiln_alexnet.safetensors"), &model, Some(&sgd), &meta)?;
    let y = model.forward(&x, Mode::Eval);
    write_tensors(&dir.join("kiln_io.safetensors"), &[("input", &x), ("output", &y)])
}

fn import(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let mut model = alexnet(99);
    checkpoint::load(&dir.join("torch_alexnet.safetensors"), &mut model, None)?;
    let x = read_tensor(&dir.join("torch_io.safetensors"), "input")?;
    let y = model.forward(&x, Mode::Eval);
    write_tensors(&dir.join("kiln_on_torch_weights.safetensors"), &[("output", &y)])
}

/// The layers model; `scripts/check_torch_interop.py` builds the same in PyTorch.
fn layers_model(seed: u64) -> Sequential {
    let device = Device::cpu();
    let mut init = Initializer::new(&device, seed);
    Sequential::new()
        .push(Conv2d::new(&mut init, 1, 4, 3).with_padding(1))
        .push(BatchNorm2d::new(&device, 4))
        .push(GELU::default())
        .push(AvgPool2d::new(2, 2))
        .push(GroupNorm::new(&device, 2, 4))
        .push(Conv2d::grouped(&mut init, 4, 4, 3, 2).with_padding(2).with_dilation(2))
        .push(AdaptiveAvgPool2d::new(1))
        .push(Flatten)
        .push(Dense::new(&mut init, 4, 6))
        .push(LayerNorm::new(&device, &[6]))
        .push(SiLU)
}

fn export_layers(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let model = layers_model(3);
    let device = Device::cpu();
    let x = Tensor::normal([3, 1, 8, 8], Normal { mean: 0.5, std: 2.0 }, 4, &device);
    // A training pass moves BatchNorm's running statistics off their initial values.
    model.forward(&x, Mode::train(1));
    checkpoint::save(&dir.join("kiln_layers.safetensors"), &model, None, &BTreeMap::new())?;
    let y = model.forward(&x, Mode::Eval);
    write_tensors(&dir.join("kiln_layers_io.safetensors"), &[("input", &x), ("output", &y)])?;
    let attention = MultiheadAttention::new(&mut Initializer::new(&device, 5), 16, 4).batch_first();
    checkpoint::save(&dir.join("kiln_attention.safetensors"), &attention, None, &BTreeMap::new())?;
    let x = Tensor::randn([2, 5, 16], 6, &device);
    let y = attention.forward(&x, Mode::Eval);
    write_tensors(&dir.join("kiln_attention_io.safetensors"), &[("input", &x), ("output", &y)])?;
    let embedding = Embedding::new(&mut Initializer::new(&device, 7), 11, 6);
    checkpoint::save(&dir.join("kiln_embedding.safetensors"), &embedding, None, &BTreeMap::new())?;
    let ids = [0, 3, 10, 3, 7, 1, 2, 9];
    let y = embedding.forward(&Tensor::from_i32([2, 4], ids.to_vec(), &device), Mode::Eval);
    // The ids travel as f32 (exact for small integers); the script turns them to int64.
    let ids = Tensor::from_vec([2, 4], ids.iter().map(|&i| i as f32).collect(), &device);
    write_tensors(&dir.join("kiln_embedding_io.safetensors"), &[("ids", &ids), ("output", &y)])
}

fn import_layers(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let mut model = layers_model(98);
    checkpoint::load(&dir.join("torch_layers.safetensors"), &mut model, None)?;
    let x = read_tensor(&dir.join("torch_layers_io.safetensors"), "input")?;
    let y = model.forward(&x, Mode::Eval);
    write_tensors(&dir.join("kiln_on_torch_layers.safetensors"), &[("output", &y)])
}

/// The two torchvision-compatible models, by file name.
fn zoo(seed: u64) -> Vec<(&'static str, Box<dyn Module>)> {
    let mut init = Initializer::new(&Device::cpu(), seed);
    let resnet = models::resnet18(&mut init, 1, 10, models::Stem::SmallImage);
    let vit =
        models::VisionTransformer::new(&mut init, models::VitConfig::FASHION_MNIST).expect("a valid config");
    vec![("resnet18", Box::new(resnet)), ("vit", Box::new(vit))]
}

fn export_models(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let device = Device::cpu();
    let x = Tensor::normal([3, 1, 28, 28], Normal { mean: 0.3, std: 0.4 }, 8, &device);
    for (name, model) in zoo(21) {
        // A training pass moves batch norm's running statistics off their defaults.
        model.forward(&x, Mode::train(1));
        checkpoint::save(
            &dir.join(format!("kiln_{name}.safetensors")),
            model.as_ref(),
            None,
            &BTreeMap::new(),
        )?;
        let y = model.forward(&x, Mode::Eval);
        write_tensors(&dir.join(format!("kiln_{name}_io.safetensors")), &[("input", &x), ("output", &y)])?;
    }
    Ok(())
}

fn import_models(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let x = read_tensor(&dir.join("torch_models_io.safetensors"), "input")?;
    for (name, mut model) in zoo(97) {
        checkpoint::load(&dir.join(format!("torch_{name}.safetensors")), model.as_mut(), None)?;
        let y = model.forward(&x, Mode::Eval);
        write_tensors(&dir.join(format!("kiln_on_torch_{name}.safetensors")), &[("output", &y)])?;
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let result = match (args.get(1).map(String::as_str), args.get(2)) {
        (Some("export"), Some(dir)) => export(&PathBuf::from(dir)),
        (Some("import"), Some(dir)) => import(&PathBuf::from(dir)),
        (Some("export-layers"), Some(dir)) => export_layers(&PathBuf::from(dir)),
        (Some("import-layers"), Some(dir)) => import_layers(&PathBuf::from(dir)),
        (Some("export-models"), Some(dir)) => export_models(&PathBuf::from(dir)),
        (Some("import-models"), Some(dir)) => import_models(&PathBuf::from(dir)),
        _ => Err(
            "usage: torch_interop export|import|export-layers|import-layers|export-models|import-models DIR"
                .into(),
        ),
    };
    if let Err(err) = result {
        eprintln!("error: {err}");
        std::process::exit(1);
    }
}
