"""Does the loop's speed-up survive a busy machine? The loop with latency, alone vs. contended.

The pruning loop (``run_pruning`` with ``measure_latency=True``) prunes a VGG-16-BN (CIFAR head,
width 1/2, random weights: latency does not depend on the values) to about 4x fewer MACs in one
L1 step (half of every layer's channels), and reports its speed-up: the original and the pruned
model timed side by side in alternating rounds (``filterprune.measure.compare_latency``, batch
1). Each run is done in two settings, alternately, ``--repeats`` times:

- ``alone``: nothing started by this script runs beside the loop;
- ``contended``: a second process keeps both cores busy (two threads of large matrix products)
  for the whole run.

The machine is shared: other work may run in both settings, so the 1-minute load average is
recorded before and after every run. The claim checked: the speed-up reported under contention
stays within 10 % of the one reported alone (median over repeats).

Run:  PYTHONPATH=src .venv/bin/python benchmarks/bench_contention.py --repeats 7 [--threads 2]
Writes the entry ``threads_N`` of benchmarks/results/contention.json (other entries are kept).
The timing settings default to the loop's own (``LatencyConfig()``: 1 thread, 5 rounds, 10
calls, 0.1 s per round), i.e. what ``filterprune prune --latency`` does when nothing is set.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from filterprune.loop import PruneConfig, run_pruning
from filterprune.measure import LatencyConfig, machine_info
from filterprune.models import create_model

RESULTS = Path(__file__).parent / "results"


def _burn(stop: Any) -> None:
    """Keep two cores busy until ``stop`` is set: two threads of 512x512 matrix products."""
    torch.set_num_threads(2)
    a = torch.randn(512, 512)
    while not stop.is_set():
        for _ in range(20):
            a = torch.tanh(a @ a)


def one_run(contended: bool, args: argparse.Namespace) -> dict[str, Any]:
    torch.manual_seed(0)
    model = create_model("vgg16_bn", width=args.width, head="cifar", num_classes=10)
    x = torch.randn(1, 3, 32, 32)
    config = PruneConfig(
        criterion="l1",
        amount=args.amount,
        scope="per_group",
        max_iterations=1,
        measure_latency=True,
        latency={
            "batch_sizes": [1],
            "devices": ["cpu"],
            "threads": args.threads,
            "rounds": args.rounds,
            "repeats": args.calls,
            "min_run_time": args.min_run_time,
        },
    )
    stop = mp.Event()
    burner = mp.Process(target=_burn, args=(stop,), daemon=True) if contended else None
    load_before = os.getloadavg()[0]
    if burner is not None:
        burner.start()
        time.sleep(2.0)  # let it spin up
    try:
        started = time.perf_counter()
        result = run_pruning(model, x, config=config, progress=False)
        seconds = time.perf_counter() - started
    finally:
        if burner is not None:
            stop.set()
            burner.join(timeout=10)
    row0, row = result.rows[0], result.final_row
    return {
        "setting": "contended" if contended else "alone",
        "macs_ratio": row0["macs"] / row["macs"],
        "speedup": row["speedup"],
        "speedup_range": [row["speedup_low"], row["speedup_high"]],
        "flags": row["latency_flags"],
        "latency_ms": row["latency_ms"],
        "original_latency_ms": row["original_latency_ms"],
        "row0_aa_speedup": row0["speedup"],  # the original against itself: the noise floor
        "loadavg_1min_before": round(load_before, 2),
        "loadavg_1min_after": round(os.getloadavg()[0], 2),
        "seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    loop = LatencyConfig()  # the loop's own defaults: what a user of `prune --latency` gets
    parser.add_argument("--rounds", type=int, default=loop.rounds, help="alternating rounds")
    parser.add_argument("--calls", type=int, default=loop.repeats, help="timed calls per round")
    parser.add_argument("--min-run-time", type=float, default=loop.min_run_time, help="seconds")
    parser.add_argument("--threads", type=int, default=loop.threads)
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--amount", type=float, default=0.5)
    parser.add_argument("--out", type=Path, default=RESULTS / "contention.json")
    args = parser.parse_args()
    info = machine_info()
    runs = []
    for i in range(args.repeats):
        for contended in (False, True) if i % 2 == 0 else (True, False):
            runs.append(one_run(contended, args))
            print(json.dumps(runs[-1]))
    medians = {
        s: statistics.median(r["speedup"] for r in runs if r["setting"] == s)
        for s in ("alone", "contended")
    }
    ratio = medians["contended"] / medians["alone"]
    measured = {
        "command": "PYTHONPATH=src .venv/bin/python benchmarks/bench_contention.py "
        f"--repeats {args.repeats} --threads {args.threads}",
        "machine_at_start": info,
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "runs": runs,
        "median_speedup": medians,
        "contended_over_alone": ratio,
        "within_10_percent": abs(ratio - 1) <= 0.10,
    }
    # one file, one entry per thread count: each run of the script replaces its own entry
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results[f"threads_{args.threads}"] = measured
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"median speed-up alone {medians['alone']:.2f}x, contended {medians['contended']:.2f}x")
    print(
        f"contended / alone = {ratio:.3f} ({'within' if abs(ratio - 1) <= 0.1 else 'OUTSIDE'} 10 %)"
    )


if __name__ == "__main__":
    main()
