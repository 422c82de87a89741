"""Does the start's reach check name the latency goals a run cannot meet? (issue 29)

Before its first step a latency run times a copy with every group thinned to the maximum pruned
fraction (L1, per group) beside the original, by each one's fastest unpreempted block, and warns
when that copy misses the goal. This script runs that check through the loop (one iteration, no
finetuning, random weights with BatchNorm calibrated, the models of
``bench_latency_widths.py``) at ``--goal`` and ``--batch``, and also times the same thinned copy
both ways (the floor and the loop's side-by-side rounds) so the figure behind each warning is
on record. The models' own latency runs, which show where they really stopped, are in
benchmarks/results/latency_widths.jsonl.

Run:  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_reach.py --models vgg resnet \\
          --out benchmarks/results/reach.jsonl
      (torchvision's models through the zoo venv: OMP_NUM_THREADS=1 PYTHONPATH=src
      /work/zoo/bin/python benchmarks/bench_reach.py --models mobilenet_v3_small regnet_x_400mf)
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import logging
from pathlib import Path

import torch
from _machine import machine_info
from bench_latency_widths import build

import filterprune as fp
from filterprune.config import PruneConfig
from filterprune.loop import run_pruning
from filterprune.measure import compare_latency, floor_speedup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--goal", type=int, default=75, help="latency reduction, percent")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for name in args.models:
        model, x = build(name)
        said = io.StringIO()
        handler = logging.StreamHandler(said)
        logging.getLogger("filterprune").addHandler(handler)
        config = PruneConfig(criterion="l1", finetune=0, final_finetune=0, max_iterations=1,
                             latency={"batch_sizes": [args.batch], "threads": 1},
                             targets=[f"latency=-{args.goal}%"])  # fmt: skip
        try:
            run_pruning(copy.deepcopy(model), x, config=config, progress=False)
        finally:
            logging.getLogger("filterprune").removeHandler(handler)
        warning = next((line for line in said.getvalue().splitlines() if "out of reach" in line),
                       None)  # fmt: skip
        thin = copy.deepcopy(model)
        fp.prune(thin, x, amount=config.max_pruned_fraction, scope="per_group", criterion="l1")
        batch = x.repeat(args.batch, *([1] * (x.dim() - 1)))
        floor = floor_speedup(model, thin, batch, batch_size=args.batch)
        (rounds,) = compare_latency(model, thin, batch, batch_sizes=(args.batch,))
        row = {
            "model": name, "goal": args.goal, "batch": args.batch, "warning": warning,
            "thinned_floor_speedup": floor.speedup, "thinned_clean_blocks": floor.clean_blocks,
            "thinned_rounds_speedup": rounds.speedup, "thinned_rounds_flags": rounds.flags,
            "machine": machine_info(),
        }  # fmt: skip
        print(f"{name}: {warning or 'no warning'}; thinned copy floor {floor.speedup:.2f}x, "
              f"rounds {rounds.speedup:.2f}x {list(rounds.flags)}", flush=True)  # fmt: skip
        with args.out.open("a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
