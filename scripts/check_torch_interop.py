"""Checks that Kiln checkpoints and PyTorch state dicts are interchangeable.

1. Kiln writes an AlexNet checkpoint (image 67) and one eval-mode forward pass;
   PyTorch loads the weights with strict=True into the equivalent torch model
   (`features`/`classifier` nn.Sequential pair) and compares its own output.
2. PyTorch saves its (fresh) weights; Kiln loads them and runs the same input;
   the outputs are compared.
3. Both directions again for a small model of the newer layers (BatchNorm2d with
   running statistics from a training pass, GELU, AvgPool2d, GroupNorm, a grouped
   dilated Conv2d, AdaptiveAvgPool2d, LayerNorm, SiLU), a MultiheadAttention and an
   Embedding.
4. Both directions for Kiln's ResNet-18 (into `torchvision.models.resnet18` with a
   1-channel 3x3 stem and no max-pool) and its Vision Transformer (into
   `torchvision.models.VisionTransformer` with a convolutional stem whose first
   convolution takes 1 channel), defined by
   `torch_resnet18` and `torch_vit` below.

Run by hand where PyTorch is installed:
    pip install torch torchvision pillow safetensors
    python3 scripts/check_torch_interop.py
"""
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def torch_alexnet(classes=10, flat=256):
    class AlexNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            nn = torch.nn
            self.features = nn.Sequential(
                nn.Conv2d(1, 96, 11, stride=4), nn.ReLU(), nn.MaxPool2d(3, 2),
                nn.Conv2d(96, 256, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
                nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(),
                nn.Conv2d(384, 384, 3, padding=1), nn.ReLU(),
                nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
            )
            self.classifier = nn.Sequential(
                nn.Flatten(), nn.Linear(flat, 4096), nn.ReLU(), nn.Dropout(0.5),
                nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(0.5), nn.Linear(4096, classes),
            )

        def forward(self, x):
            return self.classifier(self.features(x))

    return AlexNet().eval()


def kiln(command, directory):
    subprocess.run(
        ["cargo", "run", "--quiet", "--release", "-p", "kiln-nn", "--example", "torch_interop", "--", command, directory],
        check=True,
    )


def torch_layers():
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.GELU(), nn.AvgPool2d(2, 2),
        nn.GroupNorm(2, 4), nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 6),
        nn.LayerNorm([6]), nn.SiLU(),
    ).eval()


def check_layers(d, directory):
    """Kiln's layers model into PyTorch (strict) and PyTorch's into Kiln."""
    kiln("export-layers", directory)
    # Kiln's layer indices: conv 0, batch norm 1, GELU 2, pool 3, group norm 4, ...
    model = torch_layers()
    model.load_state_dict(load_file(d / "kiln_layers.safetensors"), strict=True)
    io = load_file(d / "kiln_layers_io.safetensors")
    with torch.no_grad():
        kiln_to_torch = (model(io["input"]) - io["output"]).abs().max().item()
    print(f"Kiln layers checkpoint -> PyTorch (strict=True): max |Δ| = {kiln_to_torch:.3e}")

    fresh = torch_layers().train()
    with torch.no_grad():
        fresh(torch.randn(5, 1, 8, 8) * 2 + 1)  # running statistics off their defaults
    fresh.eval()
    save_file(fresh.state_dict(), d / "torch_layers.safetensors")
    save_file({"input": io["input"]}, d / "torch_layers_io.safetensors")
    kiln("import-layers", directory)
    with torch.no_grad():
        torch_out = fresh(io["input"])
    kiln_out = load_file(d / "kiln_on_torch_layers.safetensors")["output"]
    torch_to_kiln = (torch_out - kiln_out).abs().max().item()
    print(f"PyTorch layers -> Kiln: max |Δ| = {torch_to_kiln:.3e}")

    attention = torch.nn.MultiheadAttention(16, 4, batch_first=True).eval()
    attention.load_state_dict(load_file(d / "kiln_attention.safetensors"), strict=True)
    io = load_file(d / "kiln_attention_io.safetensors")
    with torch.no_grad():
        out, _ = attention(io["input"], io["input"], io["input"])
    attention_delta = (out - io["output"]).abs().max().item()
    print(f"Kiln MultiheadAttention checkpoint -> PyTorch (strict=True): max |Δ| = {attention_delta:.3e}")

    embedding = torch.nn.Embedding(11, 6)
    embedding.load_state_dict(load_file(d / "kiln_embedding.safetensors"), strict=True)
    io = load_file(d / "kiln_embedding_io.safetensors")
    with torch.no_grad():
        out = embedding(io["ids"].long())
    embedding_delta = (out - io["output"]).abs().max().item()
    print(f"Kiln Embedding checkpoint -> PyTorch (strict=True): max |Δ| = {embedding_delta:.3e}")
    return max(kiln_to_torch, attention_delta, embedding_delta), torch_to_kiln


def torch_resnet18(classes=10):
    """torchvision's ResNet-18 for 1-channel 28x28 images: Kiln's `Stem::SmallImage`."""
    import torchvision

    model = torchvision.models.resnet18(num_classes=classes)
    model.conv1 = torch.nn.Conv2d(1, 64, 3, padding=1, bias=False)
    model.maxpool = torch.nn.Identity()
    return model.eval()


def torch_vit(classes=10):
    """torchvision's VisionTransformer as Kiln's `VitConfig::FASHION_MNIST`: a
    convolutional stem (`conv_stem_configs`) whose first convolution takes 1 channel."""
    import torchvision
    from torchvision.models.vision_transformer import ConvStemConfig

    model = torchvision.models.VisionTransformer(
        image_size=28, patch_size=4, num_layers=6, num_heads=4, hidden_dim=128, mlp_dim=256, num_classes=classes,
        conv_stem_configs=[ConvStemConfig(64, 3, 2), ConvStemConfig(128, 3, 2)],
    )
    model.conv_proj.conv_bn_relu_0[0] = torch.nn.Conv2d(1, 64, 3, stride=2, padding=1, bias=False)
    return model.eval()


def check_models(d, directory):
    """Kiln's ResNet-18 and ViT into torchvision (strict) and torchvision's into Kiln."""
    kiln("export-models", directory)
    worst = [0.0, 0.0]
    fresh_models = {}
    for name, make in [("resnet18", torch_resnet18), ("vit", torch_vit)]:
        model = make()
        model.load_state_dict(load_file(d / f"kiln_{name}.safetensors"), strict=True)
        io = load_file(d / f"kiln_{name}_io.safetensors")
        with torch.no_grad():
            delta = (model(io["input"]) - io["output"]).abs().max().item()
        print(f"Kiln {name} checkpoint -> torchvision (strict=True): max |Δ| of logits = {delta:.3e}")
        worst[0] = max(worst[0], delta)
        fresh = make().train()
        with torch.no_grad():
            fresh(torch.randn(4, 1, 28, 28))  # running statistics off their defaults
            for parameter in fresh.parameters():  # torchvision starts some at zero (the ViT's head)
                parameter.add_(0.02 * torch.randn_like(parameter))
        fresh_models[name] = fresh.eval()
        save_file({k: v.contiguous() for k, v in fresh.state_dict().items()}, d / f"torch_{name}.safetensors")
    x = torch.randn(3, 1, 28, 28)
    save_file({"input": x}, d / "torch_models_io.safetensors")
    kiln("import-models", directory)
    for name, fresh in fresh_models.items():
        with torch.no_grad():
            delta = (fresh(x) - load_file(d / f"kiln_on_torch_{name}.safetensors")["output"]).abs().max().item()
        print(f"torchvision {name} -> Kiln: max |Δ| of logits = {delta:.3e}")
        worst[1] = max(worst[1], delta)
    return worst


def main():
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as directory:
        d = Path(directory)
        kiln("export", directory)
        state = {k: v for k, v in load_file(d / "kiln_alexnet.safetensors").items() if not k.startswith("optimizer.")}
        model = torch_alexnet()
        model.load_state_dict(state, strict=True)
        io = load_file(d / "kiln_io.safetensors")
        with torch.no_grad():
            torch_out = model(io["input"])
        kiln_to_torch = (torch_out - io["output"]).abs().max().item()
        print(f"Kiln checkpoint -> PyTorch (strict=True): max |Δ| of logits = {kiln_to_torch:.3e}")

        fresh = torch_alexnet()
        save_file(fresh.state_dict(), d / "torch_alexnet.safetensors")
        save_file({"input": io["input"]}, d / "torch_io.safetensors")
        kiln("import", directory)
        with torch.no_grad():
            torch_out = fresh(io["input"])
        kiln_out = load_file(d / "kiln_on_torch_weights.safetensors")["output"]
        torch_to_kiln = (torch_out - kiln_out).abs().max().item()
        print(f"PyTorch weights -> Kiln: max |Δ| of logits = {torch_to_kiln:.3e}")

        layers_kiln_to_torch, layers_torch_to_kiln = check_layers(d, directory)
        models_kiln_to_torch, models_torch_to_kiln = check_models(d, directory)

    deltas = [kiln_to_torch, torch_to_kiln, layers_kiln_to_torch, layers_torch_to_kiln]
    ok = max(deltas + [models_kiln_to_torch, models_torch_to_kiln]) < 1e-4
    print("OK" if ok else "MISMATCH")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
