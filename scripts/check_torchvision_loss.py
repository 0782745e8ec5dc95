"""Checks a trained Kiln ResNet-18 or ViT checkpoint in torchvision: the checkpoint
loads with strict=True into the torchvision model that `check_torch_interop.py`
defines, and its test loss and accuracy on all 10,000 Fashion-MNIST test images equal
what Kiln's `--eval-only` reports (loss to 1e-4 relative).

    python3 scripts/check_torchvision_loss.py --model vit checkpoints/vit.safetensors
    python3 scripts/check_torchvision_loss.py --model resnet run/resnet.safetensors --data-dir DIR

Needs: pip install torch torchvision pillow safetensors numpy, and a release build of
alexnet-example (`cargo build --release -p alexnet-example`).
"""
import argparse
import gzip
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_torch_interop import torch_resnet18, torch_vit  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def idx(path):
    """An IDX file (gzip) as a numpy array."""
    data = gzip.open(path).read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def kiln_evaluation(args):
    """Kiln's --eval-only accuracy and loss on the whole test set."""
    command = [str(REPO / "target/release/alexnet-example"), "--model", args.model, "--backend", "cpu",
               "--eval-only", "--checkpoint", str(args.checkpoint), "--plots", str(Path(args.checkpoint).parent)]
    if args.data_dir:
        command += ["--data-dir", str(args.data_dir)]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    found = re.search(r"test accuracy ([0-9.]+)% on (\d+) images \(loss ([0-9.]+)\)", out)
    return float(found[1]) / 100, int(found[2]), float(found[3])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=["resnet", "vit"], required=True)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--data-dir", type=Path)
    args = parser.parse_args()
    data_dir = args.data_dir or Path(os.environ.get("KILN_DATA_DIR", "/usr/share/datasets/fashion-mnist"))

    model = torch_resnet18() if args.model == "resnet" else torch_vit()
    state = {k: v for k, v in load_file(args.checkpoint).items() if not k.startswith("optimizer.")}
    model.load_state_dict(state, strict=True)
    model.eval()
    with safe_open(args.checkpoint, "pt") as f:
        normalization = f.metadata().get("input_normalization", "none")
    images = torch.from_numpy(idx(data_dir / "t10k-images-idx3-ubyte.gz").astype(np.float32) / 255.0)
    labels = torch.from_numpy(idx(data_dir / "t10k-labels-idx1-ubyte.gz").astype(np.int64))
    if normalization != "none":
        mean, std = (float(v) for v in normalization.split(","))
        images = (images - mean) / std
    loss_sum, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(labels), 500):
            x, y = images[start:start + 500].unsqueeze(1), labels[start:start + 500]
            logits = model(x)
            loss_sum += torch.nn.functional.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
    torch_loss, torch_accuracy = loss_sum / len(labels), correct / len(labels)
    kiln_accuracy, kiln_images, kiln_loss = kiln_evaluation(args)
    relative = abs(torch_loss - kiln_loss) / kiln_loss
    print(f"{args.checkpoint} loads into torchvision with strict=True")
    print(f"torchvision: test loss {torch_loss:.6f}, accuracy {100 * torch_accuracy:.2f}% on {len(labels)} images")
    print(f"Kiln:        test loss {kiln_loss:.6f}, accuracy {100 * kiln_accuracy:.2f}% on {kiln_images} images")
    print(f"relative difference of the losses: {relative:.2e}")
    ok = relative <= 1e-4 and kiln_images == len(labels) and abs(torch_accuracy - kiln_accuracy) < 5e-5
    print("OK" if ok else "MISMATCH")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
