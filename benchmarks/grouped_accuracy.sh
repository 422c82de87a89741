#!/usr/bin/env bash
# Within-group against whole-group removal of grouped convs, with finetuning (docs/benchmarks.md,
# "Within-group or whole groups by default"): timm's RegNetX-200MF (conv groups 8 channels wide)
# trained on Fashion-MNIST, then the default recipe with only --target and --grouped, 3 seeds,
# one thread each. Needs the zoo environment (timm: ../shared/tools/zoo-venv.sh ZOO) and Debian's
# dataset-fashion-mnist. The zoo's torchvision needs `import torchvision_shim` first, hence the
# wrapper instead of the filterprune command.
# Usage: benchmarks/grouped_accuracy.sh OUT_DIR ZOO_PYTHON   (about 25 min of one core per seed)
set -euo pipefail
OUT=${1:?usage: benchmarks/grouped_accuracy.sh OUT_DIR ZOO_PYTHON}
PY=${2:?usage: benchmarks/grouped_accuracy.sh OUT_DIR ZOO_PYTHON}
mkdir -p "$OUT"
export OMP_NUM_THREADS=1 PYTHONPATH="$PWD/src"
FP=("$PY" -c "import sys, torchvision_shim; from filterprune.cli.main import main; sys.exit(main())")
for s in 0 1 2; do
    O="$OUT/s$s"
    [ -e "$O/base/model.json" ] || "${FP[@]}" train --task classify --model timm:regnetx_002 \
        --data fashion-mnist --steps 1500 --batch-size 64 --seed "$s" --out "$O/base"
    "${FP[@]}" eval --load "$O/base" --split test --json > "$O/base-test.json"
    # both modes at the same target; whole groups overshoot it (8-channel units), so within
    # groups once more at the MACs whole groups reached
    for run in "within 50" "whole 50" "within 57"; do
        set -- $run
        name=$1$([ "$2" = 50 ] || echo "$2")
        [ -e "$O/$name/final" ] || "${FP[@]}" prune --load "$O/base" --target "macs=-$2%" \
            --grouped "$1" --seed "$s" --run-dir "$O/$name"
        "${FP[@]}" eval --load "$O/$name" --split test --json > "$O/$name-test.json"
    done
    # both pruned models timed side by side (run on an idle machine)
    "${FP[@]}" eval --load "$O/whole" --compare "$O/within57" --latency --batch-sizes 1 16 \
        --rounds 7 --limit 64 --json > "$O/whole-vs-within57.json"
done
