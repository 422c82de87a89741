#!/usr/bin/env bash
# A latency target against the MAC-targeted default on Fashion-MNIST (docs/benchmarks.md,
# "Latency as the target"): the VGG16-BN baseline of the Fashion-MNIST benchmark (same command),
# the default recipe at --target macs=-75%, and --target latency=-75% (a 4x speed-up, which
# implies the latency cost term and widths on measured staircases), one seed, one thread each;
# then both pruned models against the baseline on the test split, timed side by side at batch 1
# and 16 in eager PyTorch and onnxruntime. Needs Debian's dataset-fashion-mnist and the onnx
# extra. Usage: benchmarks/latency_target.sh OUT_DIR [SEED]
set -euo pipefail
OUT=${1:?usage: benchmarks/latency_target.sh OUT_DIR [SEED]}
SEED=${2:-0}
mkdir -p "$OUT"
export OMP_NUM_THREADS=1
FP=${FP:-.venv/bin/filterprune}
timed() { local s; s=$(date +%s); "$@"; echo "SECONDS $(( $(date +%s) - s )): $*" >&2; }

[ -e "$OUT/vgg-base/model.json" ] || timed $FP train --task classify --model vgg16_bn \
    --model-arg width=0.5 --model-arg head=cifar --data fashion-mnist --image-size 32 \
    --val-fraction 0.05 --batch-size 64 --optimizer adam --lr 0.001 --steps 1420 \
    --out "$OUT/vgg-base" --quiet
for target in macs latency; do
    timed $FP prune --load "$OUT/vgg-base" --target "$target=-75%" --seed "$SEED" \
        --run-dir "$OUT/vgg-$target-75-s$SEED" --quiet
    timed $FP eval --load "$OUT/vgg-$target-75-s$SEED" --compare "$OUT/vgg-base" --split test \
        --runtime eager onnxruntime --batch-sizes 1 16 --rounds 7 --json \
        > "$OUT/vgg-$target-75-s$SEED.json"
done
