#!/usr/bin/env bash
# A latency target against the MAC-targeted default on Fashion-MNIST (docs/benchmarks.md,
# "Latency as the target"): the baseline of the Fashion-MNIST benchmark (same command: VGG16-BN
# or ResNet-18, width 0.5), the default recipe at --target macs=-P% and --target latency=-P%
# (a speed-up of 100/(100-P), which implies the latency cost term and widths on measured
# staircases), one seed, one thread each; then both pruned models against the baseline on the
# test split, timed side by side at batch 1 and 16 in eager PyTorch and onnxruntime. Needs
# Debian's dataset-fashion-mnist and the onnx extra.
# Usage: benchmarks/latency_target.sh OUT_DIR [SEED] [vgg|resnet] [P]   (0, vgg, 75 by default)
# Environment: TARGETS ("macs latency"), PRUNE_ARGS (more prune flags) with TAG (a run-name
# suffix for them), NO_EVAL=1 (prune only; evaluate later on an idle machine).
set -euo pipefail
OUT=${1:?usage: benchmarks/latency_target.sh OUT_DIR [SEED] [vgg|resnet] [PERCENT]}
SEED=${2:-0}
NET=${3:-vgg}
P=${4:-75}
mkdir -p "$OUT"
export OMP_NUM_THREADS=1
FP=${FP:-.venv/bin/filterprune}
timed() { local s; s=$(date +%s); "$@"; echo "SECONDS $(( $(date +%s) - s )): $*" >&2; }

case "$NET" in
    vgg) base=(--model vgg16_bn --model-arg width=0.5 --model-arg head=cifar --image-size 32
               --steps 1420) ;;
    resnet) base=(--model resnet18 --model-arg width=0.5 --model-arg stem=cifar --image-size 28
                  --steps 1110) ;;
    *) echo "latency_target.sh: model must be vgg or resnet, not '$NET'" >&2; exit 2 ;;
esac
[ -e "$OUT/$NET-base/model.json" ] || timed $FP train --task classify "${base[@]}" \
    --data fashion-mnist --val-fraction 0.05 --batch-size 64 --optimizer adam --lr 0.001 \
    --out "$OUT/$NET-base"
for target in ${TARGETS:-macs latency}; do
    run="$OUT/$NET-$target-$P${TAG:-}-s$SEED"
    # shellcheck disable=SC2086  # PRUNE_ARGS: extra flags, e.g. "--latency-batch-sizes 1,16"
    [ -e "$run/final" ] || timed $FP prune --load "$OUT/$NET-base" --target "$target=-$P%" \
        --seed "$SEED" --run-dir "$run" ${PRUNE_ARGS:-}
    [ -n "${NO_EVAL:-}" ] || timed $FP eval --load "$run" --compare "$OUT/$NET-base" --split test \
        --runtime eager onnxruntime --batch-sizes 1 16 --rounds 7 --json > "$run.json"
done
