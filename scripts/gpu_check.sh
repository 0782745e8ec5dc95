#!/usr/bin/env bash
# One command for a machine with a real GPU: runs the wgpu parity tests (a missing
# adapter fails; every GEMM tile candidate included), measures the wgpu backend (the
# GPU's fp32 FMA peak with a WGSL FMA-loop shader, GEMM GFLOP/s at 4096³ and AlexNet's
# shapes as a fraction of it, per-layer convolution times, AlexNet training and
# inference images/s at 224 with batches 32 and 128, dispatches and submits per
# training step with its GPU time per kernel family (timestamp queries), the
# autotuner's clock and choices, the buffer pool's size — the peak of GPU
# memory, as the pool keeps its buffers), the GFLOP/s of every GEMM tile shape forced in
# turn (`kiln-bench --gemm-tiles`), writes the results as JSON into OUT_DIR and prints a
# one-screen summary. With --train it also runs the example on --backend wgpu at 224
# (EPOCHS epochs, default the recipe's 5) and keeps its per-epoch metrics.
#
#   scripts/gpu_check.sh --prepare [--with-data]   # here: build and bundle the binaries
#   scripts/gpu_check.sh OUT_DIR [--train [EPOCHS]] # on the GPU machine
#
# Where cargo exists it builds and tests from source. A GPU machine without a Rust
# toolchain uses the bundle that --prepare leaves in target/gpu-check/bundle.tar.xz
# (stripped release binaries of kiln-bench, alexnet-example, the kiln-wgpu test
# binaries and the facade's every-device tests, whose `::wgpu` halves then run on the
# GPU; about 19 MB compressed; with --with-data also the four Fashion-MNIST files,
# 30 MB more); carry the folder target/gpu-check to the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bundle=target/gpu-check

if [ "${1:-}" = "--prepare" ]; then
  rm -rf "$bundle" && mkdir -p "$bundle/bin" "$bundle/tests"
  cargo build --release -p kiln-bench -p alexnet-example
  cp target/release/alexnet-example target/release/kiln-bench "$bundle/bin/"
  if [ "${2:-}" = "--with-data" ]; then
    mkdir -p "$bundle/data"
    cp "${KILN_DATA_DIR:-/usr/share/datasets/fashion-mnist}"/*-ubyte.gz "$bundle/data/"
  fi
  test_binaries() {
    cargo test --release "$@" --no-run --message-format=json 2>/dev/null |
      grep -o '"executable":"[^"]*/deps/[^"]*"' | cut -d'"' -f4
  }
  { test_binaries -p kiln-wgpu; test_binaries -p kiln --all-features; } |
    while read -r test; do cp "$test" "$bundle/tests/"; done
  strip "$bundle"/bin/* "$bundle"/tests/* 2>/dev/null || true
  tar -C "$bundle" -cf - bin tests $([ -d "$bundle/data" ] && echo data) | xz -T0 > "$bundle.tar.xz"
  rm -rf "$bundle" && mkdir -p "$bundle" && mv "$bundle.tar.xz" "$bundle/bundle.tar.xz"
  du -sh "$bundle"
  exit 0
fi

out=${1:?usage: scripts/gpu_check.sh OUT_DIR [--train [EPOCHS]] | --prepare [--with-data]}
train=${2:-}
epochs=()
[ -n "${3:-}" ] && epochs=(--epochs "$3")
mkdir -p "$out"
out=$(cd "$out" && pwd)
export KILN_REQUIRE_GPU=1

set +e
if command -v cargo >/dev/null; then
  cargo build --release -p kiln-bench -p alexnet-example
  bin=target/release
  cargo test --release -p kiln-wgpu -p kiln --all-features 2>&1 | tee "$out/parity.log"
  status=${PIPESTATUS[0]}
else
  [ -f "$bundle/bundle.tar.xz" ] && tar -C "$bundle" -xJf "$bundle/bundle.tar.xz"
  bin=$bundle/bin
  status=0
  for test in "$bundle"/tests/*; do
    [ -x "$test" ] || continue
    "$test" 2>&1 | tee -a "$out/parity.log"
    [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  done
fi
set -e
passed=$(grep -oE '[0-9]+ passed' "$out/parity.log" 2>/dev/null | awk '{s += $1} END {print s + 0}')
failed=$(grep -oE '[0-9]+ failed' "$out/parity.log" 2>/dev/null | awk '{s += $1} END {print s + 0}')
printf '{"parity_tests_passed": %s, "parity_tests_failed": %s, "exit_code": %s}\n' \
  "$passed" "$failed" "$status" > "$out/parity.json"

if [ -x "$bin/kiln-bench" ]; then
  "$bin/kiln-bench" --backend wgpu --fma-peak --batch 32 --batch 128 --image-size 224 > "$out/bench_wgpu.json"
  "$bin/kiln-bench" --backend wgpu --gemm-tiles > "$out/gemm_tiles.json"
  if command -v python3 >/dev/null; then
    python3 - "$out/bench_wgpu.json" "$out/parity.json" "$out/gemm_tiles.json" <<'SUMMARY'
import json, sys
bench, parity, tiles = (json.load(open(path)) for path in sys.argv[1:4])
print(f"device: {bench['backend']}")
print(f"parity tests: {parity['parity_tests_passed']} passed, {parity['parity_tests_failed']} failed")
peak = bench["fma_peak"]["gflops"]
print(f"fp32 FMA peak (WGSL): {peak:.0f} GFLOP/s")
for g in bench["gemm"]:
    print(f"  GEMM {g['shape']:<28} {g['gflops']:9.1f} GFLOP/s  {100 * (g['of_peak'] or 0):5.1f}% of peak")
ms = lambda v: "    -   " if v is None else f"{v:8.2f}"
for c in bench["conv"]:
    print(f"  {c['layer']:<6} fwd {ms(c['forward_ms'])} ms  input grad {ms(c['input_grad_ms'])} ms  weight grad {ms(c['weight_grad_ms'])} ms")
for a in bench["alexnet"]:
    print(f"AlexNet {bench['image_size']} batch {a['batch']}: train {a['train_images_per_s']:.0f} img/s, inference {a['inference_images_per_s']:.0f} img/s")
w = bench["wgpu"]
print(f"per training step: {w['dispatches_per_train_step']} dispatches, {w['submits_per_train_step']} submits, {w['host_ms_per_train_step']} ms host time")
print(f"GPU buffer pool (peak GPU memory): {bench['device_memory_bytes'] / 2**30:.2f} GiB")
for f in w["kernel_times_per_train_step"] or []:
    rate = "" if f["gflops"] is None else f"  {f['gflops']:9.1f} GFLOP/s"
    print(f"  GPU time {f['family']:<17} {f['dispatches']:3d} dispatches {f['gpu_ms']:9.3f} ms{rate}")
print("GEMM GFLOP/s by forced tile shape:")
for t in tiles["gemm_tiles"]:
    print("  " + "  ".join(f"{k}: {v}" for k, v in t.items()))
print(f"autotuner choices ({w['autotune_clock']}): {len(w['autotune'])} shape classes")
for choice in w["autotune"]:
    print(f"  {choice}")
SUMMARY
  else
    cat "$out/bench_wgpu.json"
  fi
fi

if [ "$train" = "--train" ]; then
  data=()
  [ -d "$bundle/data" ] && data=(--data-dir "$bundle/data")
  "$bin/alexnet-example" --backend wgpu "${data[@]}" "${epochs[@]}" --metrics "$out/train_metrics.jsonl" \
    --checkpoint "$out/alexnet.safetensors" | tee "$out/train.log"
fi
exit "$status"
