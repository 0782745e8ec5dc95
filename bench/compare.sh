#!/usr/bin/env bash
# Runs Kiln's CPU benchmark and the PyTorch and TensorFlow references alternately,
# ROUNDS times each, at the same model, batch, image size, threads and step count, then
# prints the median images/s of each and Kiln's ratios to them (JSON lines in OUT_DIR
# too).
#
#   bench/compare.sh [ROUNDS=3] [BATCH=128] [IMAGE] [THREADS=2] [OUT_DIR=bench/results]
#
# MODEL=alexnet (default; IMAGE 224), resnet or vit (IMAGE 28; PyTorch builds them
# from torchvision, TensorFlow only runs AlexNet).
#
# STEPS=2 (default): each framework reports the best of this many timed steps after its
# warm-up, per round. The small models' steps take a tenth of a second, where one busy
# moment of a shared machine decides a best of two; STEPS=5 steadies them.
#
# ISA=avx2 limits all three to AVX2 + FMA on an AVX-512 CPU, to measure what an
# AVX2-only machine would see: Kiln's GEMM kernel (KILN_GEMM_KERNEL), oneDNN in
# TensorFlow and PyTorch (ONEDNN_MAX_CPU_ISA), PyTorch's ATen kernels
# (ATEN_CPU_CAPABILITY) and MKL (MKL_ENABLE_INSTRUCTIONS). Each line records the ISA.
#
# Needs: pip install -r bench/requirements.txt (a framework that is missing is skipped).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${MODEL:-alexnet}
case $model in
  alexnet) default_image=224 ;;
  resnet|vit) default_image=28 ;;
  *) echo "compare.sh: MODEL must be alexnet, resnet or vit, not '$model'" >&2; exit 2 ;;
esac
rounds=${1:-3} batch=${2:-128} image=${3:-$default_image} threads=${4:-2} out=${5:-bench/results}
isa=${ISA:-native}
steps=${STEPS:-2}
case $steps in
  ''|*[!0-9]*|0) echo "compare.sh: STEPS must be a positive whole number, not '$steps'" >&2; exit 2 ;;
esac
case $isa in
  native) suffix= ;;
  avx2) suffix=-avx2
    export KILN_GEMM_KERNEL=avx2 ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ;;
  *) echo "compare.sh: ISA must be native or avx2, not '$isa'" >&2; exit 2 ;;
esac
mkdir -p "$out"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
log="$out/compare-$model-$stamp$suffix.jsonl"
cargo build --release -p kiln-bench >/dev/null

frameworks=(kiln)
python3 -c "import torch" 2>/dev/null && frameworks+=(pytorch)
[ "$model" = alexnet ] && python3 -c "import tensorflow" 2>/dev/null && frameworks+=(tensorflow)
for round in $(seq "$rounds"); do
  for fw in "${frameworks[@]}"; do
    case $fw in
      kiln) line=$(./target/release/kiln-bench --backend cpu --model "$model" --skip-layers --batch "$batch" \
              --image-size "$image" --threads "$threads" --steps "$steps") ;;
      pytorch) line=$(python3 bench/pytorch_models.py --model "$model" --batch "$batch" --image-size "$image" \
              --threads "$threads" --steps "$steps") ;;
      tensorflow) line=$(python3 bench/tensorflow_alexnet.py --batch "$batch" --image-size "$image" \
              --threads "$threads" --steps "$steps") ;;
    esac
    echo "{\"round\": $round, \"framework\": \"$fw\", \"model\": \"$model\", \"isa\": \"$isa\", \"steps\": $steps, \"result\": $line}" | tee -a "$log"
  done
done

python3 - "$log" "$model" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
model = sys.argv[2]
def median(fw, key):
    vals = [r["result"][model][0][key] for r in rows if r["framework"] == fw]
    return statistics.median(vals) if vals else None
def peak(fw):
    vals = [r["result"]["peak_rss_bytes"] for r in rows if r["framework"] == fw]
    return statistics.median(vals) if vals else None
fws = sorted({r["framework"] for r in rows}, key=lambda f: f != "kiln")
print(f"{'framework':<12}{'train img/s':>12}{'infer img/s':>12}{'peak RSS GiB':>14}")
for fw in fws:
    print(f"{fw:<12}{median(fw, 'train_images_per_s'):>12.2f}{median(fw, 'inference_images_per_s'):>12.2f}"
          f"{peak(fw) / 2**30:>14.2f}")
for fw in fws[1:]:
    t = median("kiln", "train_images_per_s") / median(fw, "train_images_per_s")
    i = median("kiln", "inference_images_per_s") / median(fw, "inference_images_per_s")
    print(f"kiln / {fw}: training {t:.2f}x, inference {i:.2f}x, peak memory {peak('kiln') / peak(fw):.2f}x")
PY
