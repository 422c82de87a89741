"""Grouped convs pruned inside every group (the default) or by whole groups: size and speed.

For each timm model (random weights prepared as in ``bench_timm.py``), 30 % of every group is
removed by L1 with ``grouped="within"`` and with ``grouped="whole"``; parameters, MACs at the
timing size and the median latency over alternating rounds (batch 1, one thread) are printed as
JSON lines. Needs the zoo environment (timm), like ``bench_timm.py``::

    PYTHONPATH=src /work/zoo/bin/python benchmarks/bench_grouped.py \\
        resnext50_32x4d regnetx_004 regnety_008
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

import torch
from bench_timm import PEER_SETTINGS, _prepare

import filterprune as fp


def measure(name: str, *, size: int, rounds: int, amount: float) -> dict:
    model, _, x, _ = _prepare(name)
    timing = torch.randn(1, 3, size, size)
    models = {"original": model}
    for mode in ("within", "whole"):
        pruned = copy.deepcopy(model)
        fp.prune(pruned, x, amount=amount, criterion="l1", grouped=mode, **PEER_SETTINGS)
        models[mode] = pruned
    times: dict[str, list[float]] = {k: [] for k in models}
    with torch.no_grad():
        for m in models.values():
            m(timing)  # warm-up
        for _ in range(rounds):  # alternating, so a busy spell slows every model alike
            for k, m in models.items():
                start = time.perf_counter()
                m(timing)
                m(timing)
                times[k].append((time.perf_counter() - start) / 2)
    return {
        k: {
            "ms": 1000 * statistics.median(v),
            "params": sum(p.numel() for p in models[k].parameters()),
            "macs": fp.count(models[k], timing).macs,
        }
        for k, v in times.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--size", type=int, default=160, help="timing input side (pixels)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--amount", type=float, default=0.3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for name in args.models:
        row = measure(name, size=args.size, rounds=args.rounds, amount=args.amount)
        print(json.dumps({"model": name, **row}), flush=True)


if __name__ == "__main__":
    main()
