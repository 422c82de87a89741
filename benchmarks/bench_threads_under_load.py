"""Training steps per second with one and with two torch threads, on the machine as it is loaded.

On a busy machine each of torch's OpenMP threads waits at every parallel region for a partner
that the scheduler has put aside, so one thread can be much faster than two. This times the
demo's U-Net (base 12, batch 16 at 64 x 64, Adam) for 25 s per setting, alternating 2, 1, 2, 1
threads, and records the load average beside each.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_threads_under_load.py
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch
from _machine import machine_info

from filterprune.models import create_model

RESULTS = Path(__file__).parent / "results"


def steps_per_second(threads: int, seconds: float = 25.0) -> dict:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = create_model("unet", base=12, num_classes=1)
    optimizer = torch.optim.Adam(model.parameters(), 2e-3)
    x, y = torch.randn(16, 3, 64, 64), (torch.rand(16, 1, 64, 64) > 0.5).float()
    load_before, steps = os.getloadavg()[0], 0
    start, cpu = time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        optimizer.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(model(x), y).backward()
        optimizer.step()
        steps += 1
    wall = time.perf_counter() - start
    return {
        "threads": threads,
        "steps_per_s": round(steps / wall, 2),
        "cpu_s": round(time.process_time() - cpu, 1),
        "load_average": round(load_before, 2),
    }


def main() -> None:
    result = {"machine": machine_info(), "runs": [steps_per_second(t) for t in (2, 1, 2, 1)]}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "threads_under_load.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["runs"]))


if __name__ == "__main__":
    main()
