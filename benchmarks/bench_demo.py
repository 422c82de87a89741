"""How long ``filterprune demo --quick`` (or the full demo) takes on this machine, as it is loaded.

The demo's help promises a time on 2 CPU cores. A shared machine is rarely idle, so the run is
measured as it comes and the machine's load is recorded next to it: wall time, the CPU time the
demo used (user + system, all its threads), the load average before and after, and the core
count. CPU time is close to what the demo costs on one free core; wall time on a machine with
``nproc`` cores and load ``L`` stretches roughly by ``L / nproc`` when ``L > nproc``.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_demo.py --quick   # -> results/demo_quick.json

The baseline cache is a fresh temporary folder, so the time includes training the baseline
(what a first ``make demo`` does).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="time 'demo --quick'")
    parser.add_argument("--task", default="segment", choices=("segment", "classify"))
    args = parser.parse_args()
    name = f"demo_{'quick' if args.quick else 'full'}_{args.task}"
    with tempfile.TemporaryDirectory() as tmp:
        argv = [sys.executable, "-m", "filterprune", "demo", "--task", args.task, "-q",
                "--run-dir", f"{tmp}/run", "--cache-dir", f"{tmp}/cache"]  # fmt: skip
        if args.quick:
            argv.append("--quick")
        before = load_average()
        start, usage = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    result = {
        "command": " ".join(["filterprune", *argv[3:]]),
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "cores": os.cpu_count(),
        "load_average_before": before,
        "load_average_after": load_average(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
