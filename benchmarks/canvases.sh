#!/usr/bin/env bash
# Segmentation and detection on Fashion-MNIST canvases (docs/benchmarks.md, "Fashion-MNIST
# canvases"): the commands as they were run, one seed, one thread each. Needs Debian's
# dataset-fashion-mnist and the detect extra (pip install "filterprune[detect]").
# Usage: benchmarks/canvases.sh OUT_DIR [SEED]   (SEED 0 by default; about 40 min of one core per
# seed on an idle machine, up to 3 h on a loaded one)
# The rows of docs/benchmarks.md ran with the recipe of their time, whose ranking charged MACs
# (flops_reg 0.1). The recipe for segment and detect tasks now ranks without that term, which is
# what those rows call "Taylor without its cost term"; to run the older default again, add
# --flops-reg 0.1 to the prune commands. The criteria rows: the same prune commands plus
# --criterion C (and --flops-reg 0 for taylor).
set -euo pipefail
OUT=${1:?usage: benchmarks/canvases.sh OUT_DIR [SEED]}
SEED=${2:-0}
mkdir -p "$OUT"
export OMP_NUM_THREADS=1
FP=${FP:-.venv/bin/filterprune}
timed() { local s; s=$(date +%s); "$@"; echo "SECONDS $(( $(date +%s) - s )): $*" >&2; }

# detection: yolo_tiny (base 16, 1.41 M params, 24.2 M MACs at 64 px), 800 steps of batch 32
timed $FP train --model yolo_tiny --task detect --data fashion-mnist-det --image-size 64 \
    --steps 800 --lr 0.002 --optimizer adam --schedule cosine --batch-size 32 \
    --data-arg train_canvases=25600 --data-arg val_canvases=300 --seed "$SEED" --out "$OUT/det-base"
timed $FP eval --load "$OUT/det-base" --split test
for target in 50 75; do
    timed $FP prune --load "$OUT/det-base" --target "macs=-$target%" --seed "$SEED" \
        --run-dir "$OUT/det-p$target"
    timed $FP eval --load "$OUT/det-p$target" --split test
    # the speed-up, both models timed in alternating rounds in one process
    timed $FP eval --load "$OUT/det-p$target" --compare "$OUT/det-base" --latency \
        --batch-sizes 1 16 --limit 64 --json > "$OUT/det-p$target-speed.json"
done

# segmentation: the built-in U-Net, base 16 (1.94 M params, 189.5 M MACs at 64 px)
timed $FP train --task segment --data fashion-mnist-seg --model unet --model-arg base=16 \
    --image-size 64 --steps 500 --batch-size 16 --optimizer adam --lr 0.002 --schedule cosine \
    --seed "$SEED" --out "$OUT/seg-base"
timed $FP eval --load "$OUT/seg-base" --split test
for target in 75 90; do
    timed $FP prune --load "$OUT/seg-base" --target "macs=-$target%" --seed "$SEED" \
        --run-dir "$OUT/seg-p$target"
    timed $FP eval --load "$OUT/seg-p$target" --split test
done
