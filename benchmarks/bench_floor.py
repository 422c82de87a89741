"""How well does a speed-up read on a busy machine? The loop's rounds against the floor.

A latency target is decided on the speed-up timed side by side in alternating rounds
(``compare_latency``, the loop's settings: ``LatencyConfig()``). On a machine whose cores other
processes want, those rounds are flagged ``preempted`` and can read anything (5.7x to 17.8x for a
model that runs 6.7x alone); the loop then decides on ``floor_speedup``: each model's fastest
block of calls that no other process interrupted. This script times saved models beside their
original both ways while ``--spinners`` processes spin (0: nothing added), and writes every
figure with the idle reference, the eager batch-1 speed-up of ``filterprune eval --compare``
taken on the otherwise idle machine (``QUIET``, a JSON file of that command), so each
estimator's error against it can be read.

Run:  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_floor.py \\
          --pair RUN BASE QUIET [--pair ...] --spinners 0 2 4 --repeats 3 \\
          --out benchmarks/results/floor.jsonl
RUN is a run folder or checkpoint, BASE the run folder of the original it was pruned from (its
model.json names the architecture), QUIET the idle eval JSON.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import time
from pathlib import Path
from typing import Any

import torch
from _machine import machine_info

from filterprune.measure import LatencyConfig, compare_latencies, floor_speedup
from filterprune.models import create_model
from filterprune.recipes.models import load_model


def _spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def _idle_speedup(quiet: Path) -> float | None:
    data = json.loads(quiet.read_text())
    for row in data.get("latency", []):
        if row.get("batch_size") == 1 and row.get("runtime", "eager") == "eager":
            return row.get("speedup")
    return None


def _models(run: Path, base: Path) -> tuple[torch.nn.Module, torch.nn.Module, torch.Tensor]:
    described = json.loads((base / "model.json").read_text())

    def factory() -> torch.nn.Module:
        return create_model(described["model"], **described["model_args"])

    x = torch.randn(*described["input_shape"])
    original, _ = load_model(base, factory, x)
    model, _ = load_model(run, factory, x)
    return original.eval(), model.eval(), x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pair", nargs=3, action="append", required=True,
                        metavar=("RUN", "BASE", "QUIET"))  # fmt: skip
    parser.add_argument("--spinners", type=int, nargs="+", default=[0, 2, 4])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for run, base, quiet in args.pair:
        original, model, x = _models(Path(run), Path(base))
        idle = _idle_speedup(Path(quiet))
        for spinners in args.spinners:
            procs = [mp.get_context("spawn").Process(target=_spin, args=(3600.0,))
                     for _ in range(spinners)]  # fmt: skip
            for p in procs:
                p.start()
            try:
                _spin(1.0)
                for repeat in range(args.repeats):
                    load = os.getloadavg()[0]
                    (rounds,) = compare_latencies(original, model, x, LatencyConfig())
                    floor = floor_speedup(original, model, x)
                    row: dict[str, Any] = {
                        "run": run, "spinners": spinners, "repeat": repeat, "load": load,
                        "idle_speedup": idle, "rounds_speedup": rounds["speedup"],
                        "rounds_flags": rounds["flags"], "cpu_share": rounds.get("cpu_share"),
                        **{f"floor_{k}": v for k, v in floor.to_dict().items()},
                    }  # fmt: skip
                    if spinners == 0 and repeat == 0:
                        row["machine"] = machine_info()
                    print(
                        f"{Path(run).name} spinners={spinners} load={load:.1f}: rounds "
                        f"{rounds['speedup']:.2f}x {rounds['flags']}, floor "
                        f"{floor.speedup or float('nan'):.2f}x ({floor.clean_blocks} of "
                        f"{floor.blocks} blocks clean), idle {idle:.2f}x",
                        flush=True,
                    )
                    with args.out.open("a") as f:
                        f.write(json.dumps(row) + "\n")
            finally:
                for p in procs:
                    p.terminate()
                    p.join()


if __name__ == "__main__":
    main()
