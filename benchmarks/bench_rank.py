"""Cost of Taylor ranking against plain forward+backward passes (issue: criteria).

For each model, N batches are pushed through (a) plain ``loss.backward()`` passes and (b)
``filterprune.rank(..., criterion="taylor")`` with a prebuilt graph, alternately, each in a fresh
subprocess so peak resident memory (``ru_maxrss``) is measured per variant. Times are the median of
``--repeats`` runs; the graph build (trace + probe), done once per model, is reported separately.

Run:  PYTHONPATH=src .venv/bin/python benchmarks/bench_rank.py [--quick]
Writes benchmarks/results/rank.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

MODELS = {
    "vgg16_bn": dict(kwargs=dict(head="cifar", num_classes=10), shape=(32, 3, 32, 32)),
    "resnet50": dict(kwargs=dict(num_classes=10), shape=(8, 3, 112, 112)),
}


def _child(model_name: str, variant: str, batches: int) -> dict:
    import torch
    import torch.nn.functional as F

    import filterprune as fp
    from filterprune.models import create_model

    torch.set_num_threads(2)
    torch.manual_seed(0)
    spec = MODELS[model_name]
    model = create_model(model_name, **spec["kwargs"]).eval()
    shape = spec["shape"]
    data = [(torch.randn(*shape), torch.randint(0, 10, (shape[0],))) for _ in range(batches)]
    example = data[0][0][:1]
    build = None
    graph = None
    if variant == "rank":
        t0 = time.perf_counter()
        graph = fp.analyze(model, example)
        build = time.perf_counter() - t0
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    if variant == "plain":
        for x, y in data:
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
    else:
        fp.rank(
            model, example, batches=data, loss_fn=F.cross_entropy, criterion="taylor", graph=graph
        )
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "seconds": seconds,
        "peak_rss_mb": peak / 1024,
        "rss_before_mb": base_rss / 1024,
        "graph_build_s": build,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 repeat, 2 batches")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child[0], args.child[1], int(args.child[2]))))
        return
    repeats, batches = (1, 2) if args.quick else (args.repeats, args.batches)
    results = {}
    for name in MODELS:
        runs: dict[str, list[dict]] = {"plain": [], "rank": []}
        for _ in range(repeats):
            for variant in ("plain", "rank"):
                out = subprocess.run(
                    [sys.executable, __file__, "--child", name, variant, str(batches)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                runs[variant].append(json.loads(out.stdout.strip().splitlines()[-1]))
        med = {v: statistics.median(r["seconds"] for r in runs[v]) for v in runs}
        peak = {
            v: statistics.median(r["peak_rss_mb"] - r["rss_before_mb"] for r in runs[v])
            for v in runs
        }
        results[name] = {
            "input_shape": MODELS[name]["shape"],
            "batches": batches,
            "repeats": repeats,
            "plain_s": med["plain"],
            "rank_s": med["rank"],
            "time_ratio": med["rank"] / med["plain"],
            "plain_peak_growth_mb": peak["plain"],
            "rank_peak_growth_mb": peak["rank"],
            "memory_ratio": peak["rank"] / peak["plain"] if peak["plain"] > 0 else None,
            "graph_build_s": statistics.median(r["graph_build_s"] for r in runs["rank"]),
            "runs": runs,
        }
        print(
            f"{name}: plain {med['plain']:.2f}s rank {med['rank']:.2f}s "
            f"x{results[name]['time_ratio']:.3f}; peak growth {peak['plain']:.0f} -> {peak['rank']:.0f} MB"
        )
    from _machine import machine_info  # imports torch: not before the measured children ran

    out = {
        "machine": machine_info(threads=2),
        "results": results,
    }
    path = Path(__file__).parent / "results" / "rank.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
