"""Checks that Kiln checkpoints and PyTorch state dicts are interchangeable.

1. Kiln writes an AlexNet checkpoint (image 67) and one eval-mode forward pass;
   PyTorch loads the weights with strict=True into the equivalent torch model
   (`features`/`classifier` nn.Sequential pair) and compares its own output.
2. PyTorch saves its (fresh) weights; Kiln loads them and runs the same input;
   the outputs are compared.

Run by hand where PyTorch is installed:
    pip install torch safetensors
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

    ok = kiln_to_torch < 1e-4 and torch_to_kiln < 1e-4
    print("OK" if ok else "MISMATCH")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
