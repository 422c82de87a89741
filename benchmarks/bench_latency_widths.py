"""Latency as the target: layouts chosen for MACs against layouts chosen for time, speed only.

For each model and goal this prunes the same starting model (random weights with BatchNorm
statistics calibrated on random inputs, L1 ranking, no finetuning: the layouts, not accuracy,
are compared) three ways through :func:`filterprune.loop.run_pruning`:

* ``macs``: the default recipe with ``targets=["macs=-X%"]`` (MAC cost term, any width);
* ``macs+time``: the same MAC target with the latency cost term from the lookup table and
  widths chosen on measured staircases (``cost="latency", widths="measured"``): the same MACs,
  laid out for time;
* ``latency``: ``targets=["latency=-X%"]``, the default recipe's latency goal (which implies the
  latency cost term and measured widths), timed at the batch size given.

Afterwards one process times every layout beside the original in alternating rounds
(:func:`filterprune.measure.compare_latency`) at batch 1 and 16, on 1 thread and on all
threads, in eager PyTorch and in onnxruntime (:func:`filterprune.report.ort.compare_ort_latency`).
Every ratio comes from one comparison; no figures from different moments are divided.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_latency_widths.py --models vgg resnet \\
        --goals 75 90 --out benchmarks/results/latency_widths.jsonl
    # a held-out architecture, not used to tune the method (torchvision's, random weights):
    /work/zoo/bin/python benchmarks/bench_latency_widths.py --models mobilenet_v3_small \\
        regnet_x_400mf --goals 75 --out benchmarks/results/latency_widths.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from filterprune import count  # noqa: E402
from filterprune.config import PruneConfig  # noqa: E402
from filterprune.loop import run_pruning  # noqa: E402
from filterprune.measure import compare_latency, machine_info  # noqa: E402

BUILT_IN = {
    "vgg": ("vgg16_bn", {"width": 0.5, "head": "cifar", "in_channels": 1, "num_classes": 10}, 32),
    "resnet": (
        "resnet18",
        {"width": 0.5, "stem": "cifar", "in_channels": 1, "num_classes": 10},
        28,
    ),
}


def build(name: str) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    if name in BUILT_IN:
        from filterprune.models import create_model

        factory, kwargs, size = BUILT_IN[name]
        model, channels = create_model(factory, **kwargs), 1
    else:  # torchvision, through the zoo venv (benchmark only)
        import importlib

        importlib.import_module("torchvision_shim")  # before torchvision, always
        torchvision = importlib.import_module("torchvision")

        model, channels, size = getattr(torchvision.models, name)(num_classes=10), 3, 96
    x = torch.randn(1, channels, size, size)
    model.train()
    with torch.no_grad():  # calibrate BatchNorm on random inputs
        for _ in range(4):
            model(torch.randn(16, channels, size, size))
    return model.eval(), x


def layouts(name: str, goal: int, batch: int) -> dict[str, tuple[nn.Module, float, dict]]:
    runs = {
        "macs": {"targets": [f"macs=-{goal}%"]},
        "macs+time": {"targets": [f"macs=-{goal}%"], "cost": "latency", "widths": "measured"},
        "latency": {"targets": [f"latency=-{goal}%"]},
    }
    out = {}
    for label, changes in runs.items():
        model, x = build(name)
        config = PruneConfig(
            criterion="l1",
            finetune=0,
            final_finetune=0,
            max_iterations=60,
            latency={"batch_sizes": [batch], "threads": 1},
            **changes,
        )
        started = time.perf_counter()
        print(f"[{name} -{goal}%] pruning: {label} ...", flush=True)
        result = run_pruning(model, x, config=config, progress=False)
        seconds = time.perf_counter() - started
        last = result.rows[-1]
        info = {
            "wall_s": round(seconds, 1),
            "iterations": len(result.rows) - 1,
            "stop_reason": result.stop_reason,
            "loop_speedup": last.get("speedup"),
            "loop_speedup_range": [last.get("speedup_low"), last.get("speedup_high")],
            "table_speedup": last.get("table_speedup"),
        }
        out[label] = (result.model, seconds, info)
    return out


def timings(original: nn.Module, model: nn.Module, x: torch.Tensor) -> list[dict]:
    from filterprune.report.ort import compare_ort_latency

    records = []
    for threads in sorted({1, os.cpu_count() or 1}):
        for c in compare_latency(original, model, x, batch_sizes=(1, 16), threads=threads,
                                 rounds=5, repeats=20):  # fmt: skip
            records.append({**c.to_dict(), "runtime": "eager"})
        records += compare_ort_latency(original, model, x, batch_sizes=(1, 16), threads=threads,
                                       rounds=5, repeats=20)  # fmt: skip
    keep = ("runtime", "threads", "batch_size", "speedup", "speedup_low", "speedup_high", "flags")
    return [{k: r[k] for k in keep} for r in records]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["vgg", "resnet"])
    parser.add_argument("--goals", nargs="+", type=int, default=[75, 90])
    parser.add_argument("--batch", type=int, default=1, help="batch size the latency goal is on")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for name in args.models:
        for goal in args.goals:
            original, x = build(name)
            base = count(original, x)
            done = layouts(name, goal, args.batch)
            print(f"[{name} -{goal}%] timing the layouts side by side ...", flush=True)
            for label, (model, _, info) in done.items():
                c = count(model, x)
                row = {
                    "model": name, "goal": goal, "goal_batch": args.batch, "layout": label,
                    "macs_kept": c.macs / base.macs, "params_kept": c.params / base.params,
                    "widths": [m.out_channels for m in model.modules()
                               if isinstance(m, nn.Conv2d)],
                    **info, "timings": timings(original, model, x),
                    "machine": machine_info(),
                }  # fmt: skip
                with args.out.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                eager = {(t["threads"], t["batch_size"]): t["speedup"] for t in row["timings"]
                         if t["runtime"] == "eager"}  # fmt: skip
                print(f"  {label}: MACs kept {row['macs_kept']:.3f}, eager speed-ups {eager}",
                      flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
