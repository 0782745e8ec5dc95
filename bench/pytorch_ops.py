"""The op list of `kiln-bench --ops` in PyTorch: forward and forward+backward
milliseconds (best of --reps after one warm-up) at the shapes a small-image
ResNet-18 and a small ViT use, batch 128. Prints one JSON object like kiln-bench's.

    python3 bench/pytorch_ops.py --threads 2 --reps 3
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F


def cases():
    def conv(shape, out, k, stride, pad):
        weight = torch.randn(out, shape[1], k, k) * 0.05
        return [shape], lambda x: F.conv2d(x[0], weight, None, stride, pad)

    bn = torch.nn.BatchNorm2d(64).train()
    norm = torch.nn.LayerNorm([128])
    return [
        ("conv 3x3/2 64->128 28x28", *conv([128, 64, 28, 28], 128, 3, 2, 1)),
        ("conv 1x1/2 64->128 28x28", *conv([128, 64, 28, 28], 128, 1, 2, 0)),
        ("conv 1x1 128->128 14x14", *conv([128, 128, 14, 14], 128, 1, 1, 0)),
        ("batch norm 64 28x28 (training)", [[128, 64, 28, 28]], lambda x: bn(x[0])),
        ("avg pool 2x2 64 28x28", [[128, 64, 28, 28]], lambda x: F.avg_pool2d(x[0], 2, 2)),
        ("global avg pool 512 4x4", [[128, 512, 4, 4]], lambda x: F.adaptive_avg_pool2d(x[0], 1)),
        ("batched matmul q·kT 128x4 50x32", [[128, 4, 50, 32], [128, 4, 50, 32]], lambda x: x[0] @ x[1].transpose(-1, -2)),
        ("softmax 128x4x50x50 last axis", [[128, 4, 50, 50]], lambda x: torch.softmax(x[0], 3)),
        ("layer norm 128x50x128", [[128, 50, 128]], lambda x: norm(x[0])),
        ("gelu 128x50x512", [[128, 50, 512]], lambda x: F.gelu(x[0])),
        ("attention 128x4 50x32", [[128, 4, 50, 32]] * 3, lambda x: F.scaled_dot_product_attention(*x)),
    ]


def best_of(reps, f):
    f()
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - start)
    return best


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ops = []
    for name, shapes, run in cases():
        inputs = [torch.randn(*s) for s in shapes]
        with torch.no_grad():
            forward = best_of(args.reps, lambda: run(inputs))
        leaves = [t.clone().requires_grad_() for t in inputs]
        both = best_of(args.reps, lambda: run(leaves).sum().backward())
        ops.append({"op": name, "forward_ms": round(forward * 1e3, 3), "forward_backward_ms": round(both * 1e3, 3)})
    print(json.dumps({"framework": f"pytorch {torch.__version__}", "threads": args.threads, "ops": ops}))


if __name__ == "__main__":
    main()
