"""Core benchmark: filterprune graph build and one-pass removal, side by side with Torch-Pruning.

What it measures (CPU, ``torch.set_num_threads(2)`` unless ``--threads`` says otherwise; median,
min and max of ``--runs`` runs (5) head to head and ``--sweep-runs`` runs (3) in the scaling
sweeps; every timed call is the first one on a freshly built model):

1. Head to head on VGG16-BN (ImageNet head, 25088x4096 classifier) and ResNet-50, both at
   224x224 with a batch-1 example input:

   * filterprune: ``fp.analyze(model, x, probe=False)`` (trace + dependency graph) on one fresh
     model; on a second fresh model ``fp.analyze(model, x)`` (the same plus the verification
     probe, the default) then ``fp.prune(model, x, amount=0.5, criterion="l1", graph=graph)``
     (one-pass removal);
   * Torch-Pruning (1.6+): ``tp.pruner.MagnitudePruner(..., importance=
     tp.importance.MagnitudeImportance(p=1), pruning_ratio=0.5, ignored_layers=[final Linear])``
     construction (graph build) and ``pruner.step()`` (removal), timed separately;
   * ratios TP time / filterprune time for build, prune and total (above 1: filterprune faster);
   * after pruning, both models run a forward pass; their parameter counts and MACs
     (``fp.count``) and per-module weight shapes are compared, so the two libraries are known to
     reach the same (or a stated different) compression.

2. Scaling of filterprune build (with and without probe) + prune: ResNet-18/34/50/101/152 at
   width 1, and ResNet-50 at widths 0.25/0.5/1/1.5/2, all at 224x224; with the number of traced
   ops (``len(graph.ops)``) and groups (``len(graph.groups)``).

A cheap untimed warm-up (a tiny model through both libraries) runs first, so one-off lazy imports
inside torch are not billed to the first measured run.

Shared machines: every timed run records how many cores *other* processes kept busy meanwhile
(``/proc/stat`` busy time minus this process's CPU time). Before each run the script waits (up to
``--wait-quiet`` s) for the others to idle, and a run during which they used ``--quiet-threshold``
cores or more is discarded and redone (at most 2 retries per wanted run; the discarded timings
stay in the JSON). With 2 OpenMP threads on 2 cores, one busy foreign core can slow a run 3-8x.

The full run measures for about 6 minutes on an idle 2-core machine, plus any waiting for other
processes; ``--quick`` is a smoke run (tiny widths, 64x64 input, 1 run) of about 10 seconds.

Run from the repository root (Torch-Pruning is a benchmark-only extra)::

    .venv/bin/pip install torch-pruning
    PYTHONPATH=src .venv/bin/python benchmarks/bench_core.py          # -> benchmarks/results/core.json
    PYTHONPATH=src .venv/bin/python benchmarks/bench_core.py --quick  # -> results/core_quick.json
    .venv/bin/python benchmarks/render.py benchmarks/results/core.json   # Markdown tables

Profile one filterprune build + prune after a warm-up (no JSON written)::

    PYTHONPATH=src .venv/bin/python benchmarks/bench_core.py --profile-one resnet50
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from _machine import machine_info, package_version
from torch import nn

import filterprune as fp
from filterprune.models import create_model

RESULTS_DIR = Path(__file__).resolve().parent / "results"
HEAD_TO_HEAD = ("vgg16_bn", "resnet50")
DEPTHS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
WIDTHS = (0.25, 0.5, 1.0, 1.5, 2.0)
AMOUNT = 0.5


@dataclass(frozen=True)
class Config:
    """One benchmark setting: which models, at what size, how many runs."""

    runs: int  # head to head
    sweep_runs: int  # scaling sweeps
    size: int
    head_to_head: tuple[str, ...]
    depths: tuple[str, ...]
    widths: tuple[float, ...]
    width: float  # width of the head-to-head and depth-sweep models
    torch_pruning: bool


FULL = Config(
    runs=5,
    sweep_runs=3,
    size=224,
    head_to_head=HEAD_TO_HEAD,
    depths=DEPTHS,
    widths=WIDTHS,
    width=1.0,
    torch_pruning=True,
)
QUICK = Config(
    runs=1,
    sweep_runs=1,
    size=64,
    head_to_head=HEAD_TO_HEAD,
    depths=("resnet18", "resnet50"),
    widths=(0.125, 0.25),
    width=0.25,
    torch_pruning=True,
)


# --------------------------------------------------------------------------------------------
# helpers


def build_model(name: str, width: float) -> nn.Module:
    """A fresh model of the zoo, seeded, in eval mode (ImageNet head / stem, 1000 classes)."""
    torch.manual_seed(0)
    kwargs: dict[str, Any] = {"num_classes": 1000, "width": width}
    if name.startswith("vgg"):
        kwargs["head"] = "imagenet"
    return create_model(name, **kwargs).eval()


def example_input(size: int) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(1, 3, size, size)


CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
QUIET = {"threshold_cores": 0.25, "max_wait_s": 120.0, "waited_s": 0.0, "retries": 2}


def machine_busy_s() -> float | None:
    """Non-idle CPU seconds of the whole machine since boot, summed over cores (``/proc/stat``).

    Counts user, nice, system, irq, softirq and steal time (steal: the hypervisor ran someone
    else), not idle or iowait. ``None`` where ``/proc/stat`` is missing.
    """
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    v = [int(x) for x in first[1:9]] + [0] * 8
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / CLK_TCK


class ForeignLoad:
    """Context manager: how many cores *other* processes kept busy while the block ran.

    machine busy time minus this process's CPU time, over wall time. A benchmark on a shared
    2-core machine is only trustworthy when this stays near 0.
    """

    cores: float | None = None

    def __enter__(self) -> ForeignLoad:
        self._busy = machine_busy_s()
        self._own = time.process_time()
        self._wall = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        busy = machine_busy_s()
        wall = time.perf_counter() - self._wall
        if busy is None or self._busy is None or wall <= 0:
            return
        own = time.process_time() - self._own
        self.cores = max(0.0, (busy - self._busy - own) / wall)


def wait_quiet() -> None:
    """Untimed: wait (up to ``QUIET["max_wait_s"]``) until other processes leave the CPUs idle."""
    if QUIET["max_wait_s"] <= 0:
        return
    deadline = time.perf_counter() + QUIET["max_wait_s"]
    start = time.perf_counter()
    while True:
        with ForeignLoad() as load:
            time.sleep(0.5)
        if load.cores is None or load.cores < QUIET["threshold_cores"]:
            break
        if time.perf_counter() > deadline:
            print(f"  (machine still busy: {load.cores:.2f} foreign cores; going on)", flush=True)
            break
        time.sleep(2.0)
    QUIET["waited_s"] += time.perf_counter() - start


def fmt_foreign(cores: float | None) -> str:
    return "" if cores is None else f" [other processes: {cores:.2f} cores]"


def discard(cores: float | None, attempt: int, kept: int, runs: int) -> bool:
    """Whether to throw a run away because other processes were busy while it ran.

    A contended run is redone while the setting has retries left (``QUIET["retries"]`` per
    wanted run); after that it is kept, and its ``foreign_cores`` shows it.
    """
    if cores is None or cores < QUIET["threshold_cores"]:
        return False
    retries_left = runs * (1 + QUIET["retries"]) - attempt
    return retries_left >= runs - kept


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """Call ``fn`` after a garbage collection; return its result and wall seconds."""
    gc.collect()
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def summary(values: list[float]) -> dict[str, Any]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": values,
    }


def ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None


def weight_shapes(model: nn.Module) -> dict[str, list[int]]:
    """Weight shape of every module that has one (the pruned architecture, for comparison)."""
    shapes = {}
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if isinstance(weight, torch.Tensor):
            shapes[name] = list(weight.shape)
    return shapes


def final_linear(model: nn.Module) -> nn.Module:
    """The classifier output layer: the last ``nn.Linear`` in module order."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no nn.Linear classifier")
    return linears[-1]


def check_runs(model: nn.Module, x: torch.Tensor) -> dict[str, Any]:
    """Forward ``x`` through a pruned model; report the output shape and finiteness."""
    with torch.no_grad():
        out = model(x)
    return {"output_shape": list(out.shape), "finite": bool(torch.isfinite(out).all())}


def dense_forward_s(model: nn.Module, x: torch.Tensor, repeat: int = 3) -> float:
    """Fastest of ``repeat`` plain no-grad forward passes: the floor for any tracing step."""
    best = float("inf")
    with torch.no_grad():
        for _ in range(repeat):
            _, seconds = timed(lambda: model(x))
            best = min(best, seconds)
    return best


def counts(model: nn.Module, x: torch.Tensor) -> dict[str, int]:
    c = fp.count(model, x)
    return {"params": int(c.params), "macs": int(c.macs)}


def linear_shapes(shapes: dict[str, list[int]], model: nn.Module) -> dict[str, list[int]]:
    linears = {n for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    return {n: s for n, s in shapes.items() if n in linears}


# --------------------------------------------------------------------------------------------
# measurements


@dataclass
class FpResult:
    """filterprune timings of one model setting, plus what the first run produced."""

    build_noprobe: list[float] = field(default_factory=list)
    build: list[float] = field(default_factory=list)
    prune: list[float] = field(default_factory=list)
    foreign: list[float | None] = field(default_factory=list)
    discarded: list[dict[str, Any]] = field(default_factory=list)
    forward_s: float | None = None
    ops: int = 0
    groups: int = 0
    prunable_groups: int = 0
    dense: dict[str, int] = field(default_factory=dict)
    pruned: dict[str, int] = field(default_factory=dict)
    forward: dict[str, Any] = field(default_factory=dict)
    shapes: dict[str, list[int]] = field(default_factory=dict)
    linears: dict[str, list[int]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        totals = [b + p for b, p in zip(self.build, self.prune, strict=True)]
        totals_np = [b + p for b, p in zip(self.build_noprobe, self.prune, strict=True)]
        return {
            "build_noprobe_s": summary(self.build_noprobe),
            "build_s": summary(self.build),
            "probe_s": summary(
                [b - n for b, n in zip(self.build, self.build_noprobe, strict=True)]
            ),
            "prune_s": summary(self.prune),
            "total_s": summary(totals),
            "total_noprobe_s": summary(totals_np),
            "foreign_cores": self.foreign,
            "discarded_runs": self.discarded,
            "dense_forward_s": self.forward_s,
            "ops": self.ops,
            "groups": self.groups,
            "prunable_groups": self.prunable_groups,
            "dense": self.dense,
            "pruned": self.pruned,
            "forward": self.forward,
            "linear_shapes": self.linears,
        }


def measure_fp(name: str, width: float, size: int, runs: int, *, details: bool = False) -> FpResult:
    """Time ``analyze`` without and with probe, then ``prune`` with the probed graph, per run."""
    x = example_input(size)
    res = FpResult()
    attempt = 0
    while len(res.build) < runs:
        attempt += 1
        first = attempt == 1
        # Each analyze is the first call on its own fresh model, as in real use.
        model = build_model(name, width)
        wait_quiet()
        with ForeignLoad() as load_np:
            _, t_np = timed(lambda m=model: fp.analyze(m, x, probe=False))
        del model
        model = build_model(name, width)
        if details and first:
            res.dense = counts(model, x)
            res.forward_s = dense_forward_s(model, x)
        wait_quiet()
        with ForeignLoad() as load:
            graph, t_build = timed(lambda m=model: fp.analyze(m, x))
            _, t_prune = timed(
                lambda m=model, g=graph: fp.prune(
                    m, x, amount=AMOUNT, criterion="l1", graph=g, scope="per_group", layer_types=()
                )
            )
        if load_np.cores is not None and load.cores is not None:
            load.cores = max(load.cores, load_np.cores)
        if first:
            res.ops = len(graph.ops)
            res.groups = len(graph.groups)
            res.prunable_groups = sum(not g.frozen for g in graph.groups)
            if details:
                res.forward = check_runs(model, x)
                res.pruned = counts(model, x)
                res.shapes = weight_shapes(model)
                res.linears = linear_shapes(res.shapes, model)
        times = {"build_noprobe_s": t_np, "build_s": t_build, "prune_s": t_prune}
        keep = not discard(load.cores, attempt, len(res.build), runs)
        if keep:
            res.foreign.append(load.cores)
            res.build_noprobe.append(t_np)
            res.build.append(t_build)
            res.prune.append(t_prune)
        else:
            res.discarded.append({**times, "foreign_cores": load.cores})
        print(
            f"  fp {name} w={width} run {len(res.build)}/{runs}: build(no probe) {t_np:.2f}s "
            f"build {t_build:.2f}s prune {t_prune:.2f}s{fmt_foreign(load.cores)}"
            f"{'' if keep else ' DISCARDED'}",
            flush=True,
        )
        del model, graph
    return res


@dataclass
class TpResult:
    """Torch-Pruning timings of one model setting, plus what the first run produced."""

    build: list[float] = field(default_factory=list)
    prune: list[float] = field(default_factory=list)
    foreign: list[float | None] = field(default_factory=list)
    discarded: list[dict[str, Any]] = field(default_factory=list)
    pruned: dict[str, int] = field(default_factory=dict)
    forward: dict[str, Any] = field(default_factory=dict)
    shapes: dict[str, list[int]] = field(default_factory=dict)
    linears: dict[str, list[int]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        totals = [b + p for b, p in zip(self.build, self.prune, strict=True)]
        return {
            "build_s": summary(self.build),
            "prune_s": summary(self.prune),
            "total_s": summary(totals),
            "foreign_cores": self.foreign,
            "discarded_runs": self.discarded,
            "pruned": self.pruned,
            "forward": self.forward,
            "linear_shapes": self.linears,
        }


def measure_tp(name: str, width: float, size: int, runs: int) -> TpResult:
    """Time ``MagnitudePruner`` construction (graph build) and ``step()`` (removal), per run."""
    import torch_pruning as tp

    x = example_input(size)
    res = TpResult()
    attempt = 0
    while len(res.build) < runs:
        attempt += 1
        model = build_model(name, width)
        ignored = [final_linear(model)]

        def make(m: nn.Module = model, ign: list[nn.Module] = ignored) -> Any:
            return tp.pruner.MagnitudePruner(
                m,
                x,
                importance=tp.importance.MagnitudeImportance(p=1),
                pruning_ratio=AMOUNT,
                ignored_layers=ign,
            )

        wait_quiet()
        with ForeignLoad() as load:
            pruner, t_build = timed(make)
            _, t_prune = timed(pruner.step)
        if attempt == 1:
            res.forward = check_runs(model, x)
            res.pruned = counts(model, x)
            res.shapes = weight_shapes(model)
            res.linears = linear_shapes(res.shapes, model)
        keep = not discard(load.cores, attempt, len(res.build), runs)
        if keep:
            res.foreign.append(load.cores)
            res.build.append(t_build)
            res.prune.append(t_prune)
        else:
            res.discarded.append(
                {"build_s": t_build, "prune_s": t_prune, "foreign_cores": load.cores}
            )
        print(
            f"  tp {name} w={width} run {len(res.build)}/{runs}: build {t_build:.2f}s "
            f"step {t_prune:.2f}s{fmt_foreign(load.cores)}{'' if keep else ' DISCARDED'}",
            flush=True,
        )
        del model, pruner, ignored
    return res


def compare(name: str, fpr: FpResult, tpr: TpResult) -> dict[str, Any]:
    """Ratios TP / filterprune on medians, and whether both reached the same architecture."""
    f, t = fpr.to_json(), tpr.to_json()
    fb, fbn, fpp = f["build_s"]["median"], f["build_noprobe_s"]["median"], f["prune_s"]["median"]
    tb, tpp, tt = t["build_s"]["median"], t["prune_s"]["median"], t["total_s"]["median"]
    differing = sorted(
        n for n in set(fpr.shapes) | set(tpr.shapes) if fpr.shapes.get(n) != tpr.shapes.get(n)
    )
    return {
        "ratio_build": ratio(tb, fb),
        "ratio_build_noprobe": ratio(tb, fbn),
        "ratio_prune": ratio(tpp, fpp),
        "ratio_total": ratio(tt, f["total_s"]["median"]),
        "ratio_total_noprobe": ratio(tt, f["total_noprobe_s"]["median"]),
        "same_architecture": not differing,
        "differing_modules": differing,
        "params_ratio_tp_over_fp": ratio(tpr.pruned["params"], fpr.pruned["params"]),
        "macs_ratio_tp_over_fp": ratio(tpr.pruned["macs"], fpr.pruned["macs"]),
    }


# --------------------------------------------------------------------------------------------
# machine info


# --------------------------------------------------------------------------------------------
# main


def warm_up(size: int, with_tp: bool) -> None:
    """Untimed: one tiny model through both libraries, to pay lazy imports up front."""
    x = example_input(size)
    model = build_model("resnet18", 0.125)
    fp.prune(
        model,
        x,
        amount=AMOUNT,
        criterion="l1",
        graph=fp.analyze(model, x),
        scope="per_group",
        layer_types=(),
    )
    fp.count(model, x)
    if with_tp:
        import torch_pruning as tp

        model = build_model("resnet18", 0.125)
        tp.pruner.MagnitudePruner(
            model,
            x,
            importance=tp.importance.MagnitudeImportance(p=1),
            pruning_ratio=AMOUNT,
            ignored_layers=[final_linear(model)],
        ).step()


def run_benchmark(cfg: Config, quick: bool) -> dict[str, Any]:
    started = time.perf_counter()
    machine = machine_info()  # at the start: the commit that is measured
    warm_up(cfg.size, cfg.torch_pruning)
    cache: dict[tuple[str, float], FpResult] = {}

    def fp_result(name: str, width: float, details: bool = False) -> FpResult:
        key = (name, width)
        if key not in cache:
            runs = cfg.runs if details else cfg.sweep_runs
            cache[key] = measure_fp(name, width, cfg.size, runs, details=details)
        return cache[key]

    head: dict[str, Any] = {}
    for name in cfg.head_to_head:
        print(f"head to head: {name}", flush=True)
        fpr = fp_result(name, cfg.width, details=True)
        entry: dict[str, Any] = {"filterprune": fpr.to_json()}
        if cfg.torch_pruning:
            tpr = measure_tp(name, cfg.width, cfg.size, cfg.runs)
            entry["torch_pruning"] = tpr.to_json()
            entry["comparison"] = compare(name, fpr, tpr)
        head[name] = entry

    def sweep_row(name: str, width: float) -> dict[str, Any]:
        r = fp_result(name, width).to_json()
        return {
            "model": name,
            "width": width,
            "ops": r["ops"],
            "groups": r["groups"],
            "prunable_groups": r["prunable_groups"],
            "build_noprobe_s": r["build_noprobe_s"],
            "build_s": r["build_s"],
            "prune_s": r["prune_s"],
            "total_s": r["total_s"],
            "foreign_cores": r["foreign_cores"],
            "discarded_runs": r["discarded_runs"],
        }

    print("scaling: depth", flush=True)
    depth_rows = [sweep_row(name, cfg.width) for name in cfg.depths]
    print("scaling: width", flush=True)
    width_rows = [sweep_row("resnet50", w) for w in cfg.widths]

    return {
        "benchmark": "core",
        "quick": quick,
        "settings": {
            "runs": cfg.runs,
            "sweep_runs": cfg.sweep_runs,
            "input": [1, 3, cfg.size, cfg.size],
            "amount": AMOUNT,
            "criterion": "l1",
            "width": cfg.width,
            "quiet_threshold_cores": QUIET["threshold_cores"],
            "quiet_max_wait_s": QUIET["max_wait_s"],
            "retries_per_run": QUIET["retries"],
            "torch_pruning_pruner": "tp.pruner.MagnitudePruner + MagnitudeImportance(p=1), "
            "ignored_layers=[final Linear]",
        },
        "machine": machine,
        "head_to_head": head,
        "scaling_depth": depth_rows,
        "scaling_width": width_rows,
        "elapsed_s": time.perf_counter() - started,
        "waited_for_quiet_s": QUIET["waited_s"],
        "elapsed_measuring_s": time.perf_counter() - started - QUIET["waited_s"],
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def profile_one(name: str, width: float, size: int, lines: int = 40) -> None:
    """Profile one filterprune build (with probe) + 50% L1 prune, after an untimed warm-up.

    Prints the ``lines`` entries with the largest cumulative time. The warm-up keeps the one-off
    import of PyTorch's meta kernels (about 1 s, first trace of a process) out of the profile.
    """
    import cProfile
    import pstats

    warm_up(size, with_tp=False)
    x = example_input(size)
    model = build_model(name, width)
    profiler = cProfile.Profile()
    profiler.enable()
    graph = fp.analyze(model, x)
    fp.prune(
        model, x, amount=AMOUNT, criterion="l1", graph=graph, scope="per_group", layer_types=()
    )
    profiler.disable()
    pstats.Stats(profiler).strip_dirs().sort_stats("cumtime").print_stats(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fast smoke run (tiny models)")
    parser.add_argument("--runs", type=int, help="head-to-head runs per setting (5; quick 1)")
    parser.add_argument("--sweep-runs", type=int, help="scaling runs per setting (3; quick 1)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (2)")
    parser.add_argument("--out", type=Path, help="JSON path (default results/core[_quick].json)")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        metavar="S",
        help="before each run wait up to S s for other processes to idle (default 120, quick 10; "
        "0: never wait)",
    )
    parser.add_argument(
        "--quiet-threshold",
        type=float,
        default=0.25,
        metavar="CORES",
        help="'idle' means other processes use fewer cores than this (0.25)",
    )
    parser.add_argument("--no-tp", action="store_true", help="skip Torch-Pruning")
    parser.add_argument(
        "--profile-one", metavar="MODEL", help="one filterprune build+prune of MODEL; no JSON"
    )
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    if args.wait_quiet is not None:
        QUIET["max_wait_s"] = args.wait_quiet
    elif args.quick:
        QUIET["max_wait_s"] = 10.0
    QUIET["threshold_cores"] = args.quiet_threshold
    cfg = QUICK if args.quick else FULL
    if args.profile_one:
        profile_one(args.profile_one, cfg.width, cfg.size)
        return 0
    if args.runs is not None:
        if args.runs < 1:
            parser.error("--runs must be >= 1")
        cfg = Config(**{**cfg.__dict__, "runs": args.runs})
    if args.sweep_runs is not None:
        if args.sweep_runs < 1:
            parser.error("--sweep-runs must be >= 1")
        cfg = Config(**{**cfg.__dict__, "sweep_runs": args.sweep_runs})
    if args.no_tp:
        cfg = Config(**{**cfg.__dict__, "torch_pruning": False})
    elif package_version("torch-pruning") is None:
        parser.error("torch-pruning is not installed: pip install torch-pruning (or --no-tp)")

    out = args.out or RESULTS_DIR / ("core_quick.json" if args.quick else "core.json")
    result = run_benchmark(cfg, args.quick)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"wrote {out} ({result['elapsed_measuring_s']:.0f}s measuring, "
        f"{result['waited_for_quiet_s']:.0f}s waiting for a quiet machine)",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
