"""Where should the latency flags fire? Repeated A/A comparisons: a model against its own copy.

The pruning loop times the original beside each iteration's model
(``filterprune.measure.compare_latency``) and flags a comparison whose figures should not be
trusted: ``noisy reference`` / ``noisy model`` (a model's IQR within its rounds is a large share
of its median) and ``rounds disagree`` (the round ratios spread over a large share of the
speed-up). A model against its own copy has a true speed-up of 1.0, so an A/A comparison shows
what the machine's noise alone does to each statistic, and how far the reported speed-up is off.

For each model, ``--trials`` A/A comparisons are made with the loop's own timing settings
(``LatencyConfig()``: batch 1, 1 thread, 5 alternating rounds, >= 10 calls and >= 0.1 s per model
and round). Per trial it records each model's IQR / median, the round spread
``(max - min) / median`` of the round ratios, and the error ``|speed-up - 1|``. The thresholds
are then read off these distributions: a flag on A/A comparisons should be rare (about 1 in 20).

Run:  PYTHONPATH=src .venv/bin/python benchmarks/bench_latency_flags.py --trials 40
Writes benchmarks/results/latency_flags.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from pathlib import Path
from typing import Any

import torch
from _machine import machine_info

from filterprune.measure import LatencyConfig
from filterprune.measure.latency import compare_latency
from filterprune.models import create_model

RESULTS = Path(__file__).parent / "results"
MODELS = {  # name -> (factory, input): a fast and a slower network the loop prunes
    "vgg16_bn_w0.5_32px": (
        lambda: create_model("vgg16_bn", width=0.5, head="cifar", num_classes=10),
        (1, 3, 32, 32),
    ),
    "resnet18_w0.5_32px": (
        lambda: create_model("resnet18", width=0.5, stem="cifar", num_classes=10),
        (1, 3, 32, 32),
    ),
}


def _quantile(values: list[float], q: float) -> float:
    return torch.tensor(values, dtype=torch.float64).quantile(q).item()


def one_trial(model: torch.nn.Module, x: torch.Tensor, config: LatencyConfig) -> dict[str, Any]:
    load = os.getloadavg()[0]
    started = time.perf_counter()
    (c,) = compare_latency(
        model,
        copy.deepcopy(model),
        x,
        rounds=config.rounds,
        repeats=config.repeats,
        warmup=config.warmup,
        threads=config.threads,
        min_run_time=config.min_run_time,
    )
    return {
        "speedup": c.speedup,
        "error": abs(c.speedup - 1.0),
        "round_spread": (c.speedup_high - c.speedup_low) / c.speedup,
        "reference_iqr_fraction": c.reference.iqr_ms / c.reference.median_ms,
        "model_iqr_fraction": c.model.iqr_ms / c.model.median_ms,
        "round_speedups": list(c.round_speedups),
        "reference_median_ms": c.reference.median_ms,
        "reference_iqr_ms": c.reference.iqr_ms,
        "median_ms": c.model.median_ms,
        "iqr_ms": c.model.iqr_ms,
        "flags_at_run": list(c.flags),
        "loadavg_1min_before": round(load, 2),
        "seconds": round(time.perf_counter() - started, 2),
    }


def summary(trials: list[dict[str, Any]]) -> dict[str, Any]:
    out = {}
    iqr = [t[k] for t in trials for k in ("reference_iqr_fraction", "model_iqr_fraction")]
    for name, values in (
        ("iqr_fraction", iqr),
        ("round_spread", [t["round_spread"] for t in trials]),
        ("error", [t["error"] for t in trials]),
    ):
        out[name] = {f"p{q}": round(_quantile(values, q / 100), 4) for q in (50, 90, 95, 99)}
        out[name]["max"] = round(max(values), 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=40, help="A/A comparisons per model")
    parser.add_argument("--out", type=Path, default=RESULTS / "latency_flags.json")
    args = parser.parse_args()
    config = LatencyConfig()
    info = machine_info()
    results: dict[str, Any] = {
        "command": "PYTHONPATH=src .venv/bin/python benchmarks/bench_latency_flags.py "
        f"--trials {args.trials}",
        "machine_at_start": info,
        "settings": config.to_dict(),
        "models": {},
    }
    for name, (factory, shape) in MODELS.items():
        torch.manual_seed(0)
        model, x = factory(), torch.randn(*shape)
        trials = []
        for i in range(args.trials):
            trials.append(one_trial(model, x, config))
            print(name, i, json.dumps(trials[-1]), flush=True)
        results["models"][name] = {"trials": trials, "summary": summary(trials)}
    every = [t for m in results["models"].values() for t in m["trials"]]
    results["summary_all"] = summary(every)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results["summary_all"], indent=1))


if __name__ == "__main__":
    main()
