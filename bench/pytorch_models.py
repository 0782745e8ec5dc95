"""PyTorch reference for kiln-bench: the same AlexNet, batch, threads and step count,
printing the same JSON fields as kiln-bench's "alexnet" entries.

    python3 bench/pytorch_alexnet.py --batch 128 --image-size 224 --steps 3 --threads 2
    python3 bench/pytorch_alexnet.py --device cuda --steps 20   # a GPU, cuDNN autotuned

Every timed call ends by reading a result back to the host (`loss.item()`, `tolist()`),
so on a GPU it includes the whole step, as kiln-bench's wgpu timings do.
"""
import argparse
import json
import resource

import torch
import torch.nn as nn

from timing import best_of, result_row


def alexnet(flat):
    return nn.Sequential(
        nn.Conv2d(1, 96, 11, stride=4), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(96, 256, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Flatten(), nn.Linear(flat, 4096), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(0.5), nn.Linear(4096, 10),
    )


def resnet():
    import torchvision

    model = torchvision.models.resnet18(num_classes=10)
    model.conv1 = nn.Conv2d(1, 64, 3, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


def vit(side):
    """Kiln's `VitConfig::FASHION_MNIST`: a two-convolution stem, 1-channel input."""
    import torchvision
    from torchvision.models.vision_transformer import ConvStemConfig

    model = torchvision.models.VisionTransformer(
        image_size=side, patch_size=4, num_layers=6, num_heads=4, hidden_dim=128, mlp_dim=256, num_classes=10,
        conv_stem_configs=[ConvStemConfig(64, 3, 2), ConvStemConfig(128, 3, 2)],
    )
    model.conv_proj.conv_bn_relu_0[0] = nn.Conv2d(1, 64, 3, stride=2, padding=1, bias=False)
    return model


def build(name, side):
    if name == "resnet":
        return resnet()
    if name == "vit":
        return vit(side)
    c1 = (side - 11) // 4 + 1
    p3 = (((c1 - 3) // 2 + 1 - 3) // 2 + 1 - 3) // 2 + 1
    return alexnet(256 * p3 * p3)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, action="append")
    parser.add_argument("--model", choices=["alexnet", "resnet", "vit"], default="alexnet")
    parser.add_argument("--image-size", type=int, help="default: 224 for alexnet, 28 for resnet and vit")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = device.type == "cuda"
    torch.manual_seed(0)
    side = args.image_size or (224 if args.model == "alexnet" else 28)
    results = []
    for n in args.batch or [32, 128]:
        model = build(args.model, side).to(device)
        sgd = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        x = torch.rand(n, 1, side, side, device=device)
        labels = torch.arange(n, device=device) % 10

        def train():
            model.train()
            sgd.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(x), labels)
            loss.backward()
            sgd.step()
            loss.item()

        def infer():
            model.eval()
            with torch.no_grad():
                model(x).argmax(1).tolist()

        results.append(result_row(n, best_of(args.steps, train), best_of(args.steps, infer)))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    backend = f"pytorch {torch.__version__}"
    if device.type == "cuda":
        backend += f" on {torch.cuda.get_device_name(device)} (cuDNN benchmark mode)"
    print(json.dumps({"backend": backend, "threads": args.threads,
                      "image_size": side, "model": args.model, args.model: results, "peak_rss_bytes": peak}))


if __name__ == "__main__":
    main()
