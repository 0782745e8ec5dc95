#!/usr/bin/env bash
# One command for a machine with a real GPU: builds in release, runs the wgpu parity
# tests (a missing adapter fails), measures the wgpu backend (GEMM GFLOP/s at AlexNet's
# shapes, per-layer convolution times, AlexNet training and inference images/s at 224,
# batch 128), and writes the results as JSON into OUT_DIR.
#
#   scripts/gpu_check.sh OUT_DIR [--train]
#
# With --train it also runs the full example (5 epochs at 224 on --backend wgpu) and
# keeps its per-epoch metrics.
set -euo pipefail
out=${1:?usage: scripts/gpu_check.sh OUT_DIR [--train]}
train=${2:-}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.."

export KILN_REQUIRE_GPU=1
cargo build --release -p kiln-bench -p alexnet-example
set +e
cargo test --release -p kiln-wgpu 2>&1 | tee "$out/parity.log"
status=${PIPESTATUS[0]}
set -e
passed=$(grep -oE '[0-9]+ passed' "$out/parity.log" | awk '{s += $1} END {print s + 0}')
failed=$(grep -oE '[0-9]+ failed' "$out/parity.log" | awk '{s += $1} END {print s + 0}')
printf '{"parity_tests_passed": %s, "parity_tests_failed": %s, "exit_code": %s}\n' \
  "$passed" "$failed" "$status" > "$out/parity.json"

./target/release/kiln-bench --backend wgpu --batch 32 --batch 128 --image-size 224 > "$out/bench_wgpu.json"
cat "$out/bench_wgpu.json"

if [ "$train" = "--train" ]; then
  ./target/release/alexnet-example --backend wgpu --metrics "$out/train_metrics.jsonl" \
    --checkpoint "$out/alexnet.safetensors" | tee "$out/train.log"
fi
exit "$status"
