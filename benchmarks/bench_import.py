"""Import benchmark: how long ``import filterprune`` takes, and how many of its modules it loads.

Two source trees are compared in one run: this checkout's ``src/`` and the ``src/`` of a
baseline revision (``--baseline``, extracted with ``git archive`` into a temporary folder). Each
round starts one fresh interpreter per tree, in alternating order (the first tree of a round
alternates too), so both sides see the same machine load. In each interpreter ``torch`` is
imported first (every filterprune user pays for it, whatever filterprune does), then
``import filterprune`` is timed with ``time.perf_counter``; the interpreter also reports the
number of ``filterprune`` modules and of all modules loaded. The ratio is the median of the
per-round ratios (baseline / this tree).

Run from the repository root::

    PYTHONPATH=src .venv/bin/python benchmarks/bench_import.py --baseline 36de362
    # -> benchmarks/results/import.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path
from typing import Any

from _machine import ROOT, git, machine_info

PROBE = """
import json, sys, time
import torch
before = len(sys.modules)
start = time.perf_counter()
import filterprune
seconds = time.perf_counter() - start
own = sorted(m for m in sys.modules if m == "filterprune" or m.startswith("filterprune."))
print(json.dumps({"seconds": seconds, "own_modules": own, "new_modules": len(sys.modules) - before}))
"""


def extract_src(revision: str, into: Path) -> Path:
    """``src/`` of ``revision`` written below ``into``; returns the ``src`` folder."""
    data = subprocess.run(
        ["git", "archive", "--format=tar", revision, "src"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def one_import(src: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(src), "PYTHONDONTWRITEBYTECODE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="36de362", help="git revision to compare with")
    parser.add_argument("--rounds", type=int, default=10, help="fresh interpreters per tree")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/import.json")
    args = parser.parse_args()

    machine = machine_info()
    trees = {"baseline": None, "this": ROOT / "src"}
    with tempfile.TemporaryDirectory() as tmp:
        trees["baseline"] = extract_src(args.baseline, Path(tmp))
        for src in trees.values():  # compile the bytecode once for both, outside the timing
            subprocess.run([sys.executable, "-m", "compileall", "-q", str(src)], check=True)
            one_import(src)
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
        for i in range(args.rounds):
            order = list(trees) if i % 2 == 0 else list(reversed(trees))
            for name in order:
                runs[name].append(one_import(trees[name]))

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[name])

    ratios = [
        b["seconds"] / t["seconds"] for b, t in zip(runs["baseline"], runs["this"], strict=True)
    ]
    result = {
        "machine": machine,
        "settings": {
            "baseline": args.baseline,
            "baseline_commit": git("rev-parse", "--short", args.baseline),
            "rounds": args.rounds,
            "what": "seconds of `import filterprune` after `import torch`, fresh interpreters, "
            "alternating",
        },
        "summary": {
            name: {
                "median_s": median(name, "seconds"),
                "min_s": min(r["seconds"] for r in runs[name]),
                "max_s": max(r["seconds"] for r in runs[name]),
                "filterprune_modules": len(runs[name][0]["own_modules"]),
                "modules_loaded": median(name, "new_modules"),
            }
            for name in trees
        },
        "ratio_baseline_over_this": {
            "median": statistics.median(ratios),
            "min": min(ratios),
            "max": max(ratios),
        },
        "modules": {name: runs[name][0]["own_modules"] for name in trees},
        "runs": {name: [r["seconds"] for r in runs[name]] for name in trees},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    for name, s in result["summary"].items():
        print(
            f"{name}: median {s['median_s'] * 1e3:.0f} ms (min {s['min_s'] * 1e3:.0f}, max "
            f"{s['max_s'] * 1e3:.0f}); {s['filterprune_modules']} filterprune modules, "
            f"{s['modules_loaded']:.0f} modules in all"
        )
    r = result["ratio_baseline_over_this"]
    print(f"baseline / this: median {r['median']:.2f}x (min {r['min']:.2f}, max {r['max']:.2f})")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
