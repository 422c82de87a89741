"""Task-level targets: a pruned VGG16-BN on digits and a pruned U-Net on synthetic cars.

Targets (checked and reported, never assumed):

- ``vgg``: VGG16-BN (CIFAR head, ``--vgg-width``) on the built-in digits at 32x32: at least 4x
  fewer parameters and at least 3x measured CPU speed-up at batch 1 and batch 16, with at most
  0.5 points accuracy drop.
- ``unet``: U-Net (``--unet-base``) on the synthetic Carvana-like cars: at least 60 % fewer
  parameters and a 60 % smaller checkpoint, with at most 1 point Dice drop.

Both use the library's loop (:func:`filterprune.loop.run_pruning`): every iteration ranks the
channels with the Taylor criterion (Molchanov et al. 2017, https://arxiv.org/abs/1611.06440) with
FLOPs regularisation (``flops_reg``), removes the lowest ``amount`` of all prunable channels in one
global ranking with ``round_to=8``, finetunes (Adam) and evaluates; ``PruneConfig.max_metric_drop``
keeps the last iteration whose metric is within the bound, and the run stops once the size targets
are met or the iteration limit is reached; a final finetune follows. For ``vgg`` an iteration that
misses the bound is finetuned up to twice more before it is rejected (``PruneConfig.recovery=2``):
one selection image is 0.28 points, so without it one unlucky evaluation ends the run.

Three-way data split, so that the stop rule does not select on the reported numbers: the loop's
``evaluate`` (and so ``max_metric_drop``) sees a *selection* split; the reported drop is measured
on a separate *test* split that no decision used. Digits: ``builtin_data("classify",
val_fraction=0.4)`` (1078 train), the held-out 40 % split in two stratified halves (359
selection / 360 test). Cars: :func:`filterprune.tasks.make_synthetic_cars` (what
``builtin_data("segment")`` renders; 80 cars x 8 views at 48x48), split by car with
:func:`filterprune.tasks.split_by_object_id`: 60 % train (384 images), the rest halved by car into
selection / test (128 / 128).

Both metrics are compared with the baseline the loop started from; the pruned models get more
training than the baseline did (the finetuning between iterations and the final finetune), so a
gain over the baseline is partly that extra training, not an effect of pruning.

Latency is measured in a separate pass, because the accuracy pass runs on a shared machine::

    PYTHONPATH=src .venv/bin/python benchmarks/bench_tasks.py --threads 1   # accuracy pass
    PYTHONPATH=src .venv/bin/python benchmarks/bench_tasks.py --latency-only  # on a quiet machine

The accuracy pass saves the baseline and the pruned model of each task as filterprune checkpoints
(``weights.safetensors`` + ``plan.json``) under ``--cache-dir`` (default
``/tmp/filterprune_bench/tasks``); ``--latency-only`` loads them (rebuilding the pruned
architecture from the plan), checks that they still score what the accuracy pass recorded, times
both with :func:`filterprune.measure.compare_latency` (``--latency-threads`` threads, default 2,
batch 1 and 16, ``--latency-rounds`` alternating rounds, median of the per-round medians) and
updates ``benchmarks/results/tasks.json`` in place. ``--quick`` is a smoke run (tiny models, a
few steps, results/tasks_quick.json; the numbers mean nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from _machine import machine_info
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from filterprune.loop import Budget, PruneConfig, load, run_pruning, save
from filterprune.measure import LatencyConfig, checkpoint_size_bytes, compare_latency, count
from filterprune.models import create_model
from filterprune.tasks import (
    SyntheticCarsConfig,
    builtin_data,
    get_task,
    make_synthetic_cars,
    split_by_object_id,
)

ROOT = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Spec:
    """One task's model, data, training and pruning settings."""

    task: str
    model: str
    model_kwargs: dict[str, Any]
    input_shape: tuple[int, int, int, int]
    data_kwargs: dict[str, Any]
    batch_size: int
    baseline_steps: int
    base_lr: float
    lr: float
    flops_reg: float
    amount: float
    ranking_batches: int
    finetune: int
    final_finetune: int
    max_iterations: int
    max_drop: float  # the target's bound on the metric drop (absolute, 0.005 = 0.5 points)
    targets: tuple[str, ...]
    round_to: int = 8
    seed: int = 0
    latency_batch: int | None = None  # time this batch size each iteration (for latency targets)
    recovery: int = 0  # extra finetunes of an iteration that misses the bound before rejecting
    requirements: dict[str, float] = field(default_factory=dict)


SPECS: dict[str, Spec] = {
    "vgg": Spec(
        task="classify",
        model="vgg16_bn",
        model_kwargs=dict(width=0.5, head="cifar", num_classes=10),
        input_shape=(1, 3, 32, 32),
        data_kwargs=dict(image_size=32),
        batch_size=64,
        baseline_steps=900,
        base_lr=2e-3,
        lr=3e-4,
        flops_reg=0.1,
        amount=0.1,
        ranking_batches=8,
        finetune=150,
        final_finetune=300,
        max_iterations=26,
        max_drop=0.005,
        targets=("params=-80%", "macs=-90%"),
        recovery=2,
        requirements={"params_ratio": 4.0, "speedup": 3.0, "drop_points": 0.5},
    ),
    "unet": Spec(
        task="segment",
        model="unet",
        model_kwargs=dict(base=8, num_classes=1),
        input_shape=(1, 3, 48, 48),
        data_kwargs=dict(image_size=48, num_cars=80, views_per_car=8),
        batch_size=16,
        baseline_steps=600,
        base_lr=3e-3,
        lr=1e-3,
        flops_reg=1e-3,
        amount=0.12,
        ranking_batches=6,
        finetune=30,
        final_finetune=90,
        max_iterations=12,
        max_drop=0.01,
        targets=("params=-65%", "size=-65%"),
        requirements={"params_reduction": 0.6, "size_reduction": 0.6, "drop_points": 1.0},
    ),
}

QUICK = {
    "vgg": dict(
        model_kwargs=dict(width=1 / 16, head="cifar", num_classes=10),
        baseline_steps=20,
        finetune=3,
        final_finetune=3,
        max_iterations=2,
        ranking_batches=2,
        round_to=1,
    ),
    "unet": dict(
        model_kwargs=dict(base=4, num_classes=1),
        input_shape=(1, 3, 32, 32),
        data_kwargs=dict(image_size=32, num_cars=10, views_per_car=4),
        baseline_steps=10,
        finetune=3,
        final_finetune=3,
        max_iterations=2,
        ranking_batches=2,
        round_to=1,
    ),
}


# ----- environment ---------------------------------------------------------------------------
# ----- data ----------------------------------------------------------------------------------
def _subset(data: TensorDataset, index: list[int]) -> TensorDataset:
    idx = torch.as_tensor(sorted(index), dtype=torch.long)
    return TensorDataset(*(t[idx] for t in data.tensors))


def splits(spec: Spec) -> dict[str, TensorDataset]:
    """``train`` / ``select`` (the loop's stop rule) / ``test`` (reported only)."""
    if spec.task == "classify":
        from sklearn.model_selection import train_test_split

        train, held = builtin_data("classify", seed=spec.seed, val_fraction=0.4, **spec.data_kwargs)
        labels = held.tensors[1].numpy()
        sel, test = train_test_split(
            list(range(len(labels))), test_size=0.5, random_state=spec.seed, stratify=labels
        )
        return {"train": train, "select": _subset(held, sel), "test": _subset(held, test)}
    cars = make_synthetic_cars(SyntheticCarsConfig(seed=spec.seed, **spec.data_kwargs))
    full = TensorDataset(cars.images, cars.masks)
    train, held = split_by_object_id(cars.object_ids, val_fraction=0.4, seed=spec.seed)
    held_ids = cars.object_ids[torch.as_tensor(held)]
    rest_sel, rest_test = split_by_object_id(held_ids, val_fraction=0.5, seed=spec.seed)
    return {
        "train": _subset(full, train),
        "select": _subset(full, [held[i] for i in rest_sel]),
        "test": _subset(full, [held[i] for i in rest_test]),
    }


class Runner:
    """Loaders, training and evaluation of one task."""

    def __init__(self, spec: Spec, order_seed: int = 0) -> None:
        self.spec = spec
        self.task = get_task(spec.task)
        self.data = splits(spec)
        # Separate, fixed shuffles for the baseline and for the loop, so the loop sees the same
        # batches whether the baseline was just trained or loaded from the cache.
        self.baseline_loader = self.loader(spec.seed)
        self.train_loader = self.loader(1000 + 1000 * order_seed + spec.seed)
        self.loaders = {k: DataLoader(self.data[k], batch_size=128) for k in ("select", "test")}

    def loader(self, seed: int) -> DataLoader:
        gen = torch.Generator().manual_seed(seed)
        return DataLoader(
            self.data["train"], batch_size=self.spec.batch_size, shuffle=True, generator=gen
        )

    def sizes(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.data.items()}

    def train(self, model: nn.Module, steps: int, lr: float, loader: DataLoader) -> int:
        """Adam: 2/3 of ``steps`` at ``lr``, the rest at ``lr / 5`` (a fresh optimizer each)."""
        first = (2 * steps) // 3
        done = 0
        for n, rate in ((first, lr), (steps - first, lr / 5)):
            if n > 0:
                done += self.task.finetune(model, loader, steps=n, lr=rate, optimizer="adam")
        return done

    def metric(self, model: nn.Module, split: str) -> float:
        return float(self.task.evaluate(model, self.loaders[split])[self.task.primary_metric])

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """What the loop sees: the selection metric, plus the test metric for the record."""
        name = self.task.primary_metric
        return {name: self.metric(model, "select"), f"test_{name}": self.metric(model, "test")}


def factory(spec: Spec):
    return lambda: create_model(spec.model, **spec.model_kwargs)


def _paths(
    cache: Path, name: str, spec: Spec, order_seed: int, variant: str = ""
) -> dict[str, Path]:
    tag = "-".join(f"{k}{v:g}" for k, v in spec.model_kwargs.items() if isinstance(v, int | float))
    root = cache / f"{name}-{tag}-seed{spec.seed}"
    suffix = f"-{variant}" if variant else ""
    return {
        "baseline": root / f"baseline-steps{spec.baseline_steps}",
        "run": root / f"run-order{order_seed}{suffix}",
        "pruned": root / f"pruned-order{order_seed}{suffix}",
    }


def baseline(runner: Runner, path: Path) -> tuple[nn.Module, dict[str, Any]]:
    spec = runner.spec
    if (path / "weights.safetensors").exists():
        return load(path, factory(spec)).train(), {"cached": True}
    torch.manual_seed(spec.seed)
    model = factory(spec)()
    start = time.perf_counter()
    runner.train(model, spec.baseline_steps, spec.base_lr, runner.baseline_loader)
    save(model, None, path)
    return model, {"cached": False, "train_seconds": round(time.perf_counter() - start, 1)}


def describe(model: nn.Module, runner: Runner) -> dict[str, Any]:
    x = torch.zeros(runner.spec.input_shape)
    counts = count(model, x)
    name = runner.task.primary_metric
    return {
        "params": counts.params,
        "macs": counts.macs,
        "checkpoint_bytes": checkpoint_size_bytes(model),
        f"select_{name}": runner.metric(model, "select"),
        f"test_{name}": runner.metric(model, "test"),
        "conv_widths": [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)],
    }


# ----- accuracy pass -------------------------------------------------------------------------
def run_task(name: str, spec: Spec, args: argparse.Namespace) -> dict[str, Any]:
    paths = _paths(Path(args.cache_dir), name, spec, args.order_seed, args.variant)
    runner = Runner(spec, args.order_seed)
    start = time.perf_counter()
    model, binfo = baseline(runner, paths["baseline"])
    before = describe(model, runner)
    print(f"[{name}] baseline {before}", flush=True)
    metric = runner.task.primary_metric
    config = PruneConfig(
        criterion="taylor",
        flops_reg=spec.flops_reg,
        amount=spec.amount,
        scope="global",
        layer_types=(),  # as measured: every layer kind, a fixed quarter per layer
        max_layer_fraction=0.25,
        round_to=spec.round_to,
        ranking_batches=spec.ranking_batches,
        finetune=spec.finetune,
        final_finetune=spec.final_finetune,
        max_iterations=spec.max_iterations,
        targets=spec.targets,
        metric=metric,
        max_metric_drop=spec.max_drop * args.stop_margin,
        recovery=args.recovery if args.recovery is not None else spec.recovery,
        seed=spec.seed,
        **(
            {
                "latency": LatencyConfig(
                    batch_sizes=(spec.latency_batch,), devices=("cpu",), threads=2
                )
            }
            if spec.latency_batch
            else {}
        ),
    )

    def finetune(m: nn.Module, start_step: int, budget: Budget) -> int:
        return runner.train(m, int(budget.steps), spec.lr, runner.train_loader)

    if paths["run"].exists():
        import shutil

        shutil.rmtree(paths["run"])
    result = run_pruning(
        model,
        torch.zeros(spec.input_shape),
        config=config,
        finetune=finetune,
        evaluate=runner.evaluate,
        batches=lambda: iter(runner.train_loader),
        loss_fn=runner.task.loss,
        run_dir=paths["run"],
        progress=False,
    )
    save(result.model, result.plan, paths["pruned"])
    after = describe(result.model, runner)
    print(f"[{name}] pruned {after} ({result.stop_message})", flush=True)
    rows = [
        {
            k: row.get(k)
            for k in (
                "iteration",
                "removed",
                "removed_total",
                "finetune",
                "params",
                "macs",
                "size_mb",
                "seconds",
                "recovery",
            )
        }
        | {"metrics": row.get("metrics"), "accepted": row.get("accepted")}
        for row in result.rows
    ]
    return {
        "task": spec.task,
        "model": f"{spec.model}({', '.join(f'{k}={v!r}' for k, v in spec.model_kwargs.items())})",
        "spec": asdict(spec),
        "prune_config": config.to_dict(),
        "data_sizes": runner.sizes(),
        "baseline_training": binfo,
        "checkpoints": {k: str(v) for k, v in paths.items()},
        "baseline": before,
        "pruned": after,
        "stop_reason": result.stop_reason,
        "best_iteration": result.best_iteration,
        "iterations": rows,
        "seconds": round(time.perf_counter() - start, 1),
    }


# ----- latency pass --------------------------------------------------------------------------
def latency_pass(name: str, spec: Spec, entry: Mapping[str, Any], args: argparse.Namespace):
    paths = {k: Path(v) for k, v in entry["checkpoints"].items()}
    runner = Runner(spec)
    models = {k: load(paths[k], factory(spec)) for k in ("baseline", "pruned")}
    metric = runner.task.primary_metric
    check = {}
    for k, m in models.items():
        now, then = runner.metric(m, "test"), entry[k][f"test_{metric}"]
        check[k] = {"recorded": then, "reloaded": now, "same": abs(now - then) < 1e-6}
        if not check[k]["same"]:
            raise SystemExit(f"[{name}] {k}: reloaded checkpoint scores {now}, recorded {then}")
    x = torch.zeros(spec.input_shape)
    load_before = list(os.getloadavg())
    # baseline and pruned timed side by side in alternating rounds (filterprune.measure)
    compared = {
        c.batch_size: c
        for c in compare_latency(
            models["baseline"],
            models["pruned"],
            x,
            batch_sizes=(1, 16),
            rounds=args.latency_rounds,
            threads=args.latency_threads,
        )
    }
    out: dict[str, Any] = {
        "threads": args.latency_threads,
        "rounds": args.latency_rounds,
        "loadavg_before": load_before,
        "loadavg_after": list(os.getloadavg()),
        "reload_check": check,
        "median_ms": {
            "baseline": {str(b): c.reference.median_ms for b, c in compared.items()},
            "pruned": {str(b): c.model.median_ms for b, c in compared.items()},
        },
        "per_round_ms": {
            "baseline": {str(b): list(c.reference.round_medians_ms) for b, c in compared.items()},
            "pruned": {str(b): list(c.model.round_medians_ms) for b, c in compared.items()},
        },
        "speedup": {str(b): c.speedup for b, c in compared.items()},
        "speedup_range": {str(b): [c.speedup_low, c.speedup_high] for b, c in compared.items()},
        "flags": {str(b): list(c.flags) for b, c in compared.items()},
    }
    return out


# ----- verdicts ------------------------------------------------------------------------------
def verdict(name: str, entry: Mapping[str, Any]) -> dict[str, Any]:
    req = entry["spec"]["requirements"]
    b, p = entry["baseline"], entry["pruned"]
    metric = "accuracy" if entry["task"] == "classify" else "dice"
    drop_test = 100 * (b[f"test_{metric}"] - p[f"test_{metric}"])
    drop_select = 100 * (b[f"select_{metric}"] - p[f"select_{metric}"])
    out: dict[str, Any] = {
        "metric": metric,
        "drop_points_test": drop_test,
        "drop_points_select": drop_select,
        "drop_ok": drop_test <= req["drop_points"] + 1e-9,
        "params_ratio": b["params"] / p["params"],
        "params_reduction": 1 - p["params"] / b["params"],
        "macs_ratio": b["macs"] / p["macs"],
        "size_reduction": 1 - p["checkpoint_bytes"] / b["checkpoint_bytes"],
    }
    if name == "vgg":
        out["params_ok"] = out["params_ratio"] >= req["params_ratio"]
        lat = entry.get("latency")
        if lat is None:
            out["speedup_ok"] = None  # not measured yet: run --latency-only
        else:
            out["speedup"] = lat["speedup"]
            out["speedup_ok"] = all(v >= req["speedup"] for v in lat["speedup"].values())
        checks = [out["drop_ok"], out["params_ok"], out["speedup_ok"]]
    else:
        out["params_ok"] = out["params_reduction"] >= req["params_reduction"]
        out["size_ok"] = out["size_reduction"] >= req["size_reduction"]
        checks = [out["drop_ok"], out["params_ok"], out["size_ok"]]
    out["met"] = None if None in checks else all(checks)
    return out


def markdown(results: Mapping[str, Any]) -> str:
    lines = [
        "| task | model | metric (test) before → after | drop, points (test / select) | "
        "params before → after | MACs before → after | checkpoint MB before → after | "
        "speed-up b1 / b16 | iterations | target met |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, e in results["tasks"].items():
        v, b, p = e["verdict"], e["baseline"], e["pruned"]
        m = v["metric"]
        speed = "–"
        if "latency" in e:
            s = e["latency"]["speedup"]
            speed = f"{s['1']:.2f}x / {s['16']:.2f}x"
        met = {True: "yes", False: "**no**", None: "latency not measured"}[v["met"]]
        lines.append(
            f"| {name} | {e['model']} | {100 * b[f'test_{m}']:.2f} → {100 * p[f'test_{m}']:.2f} "
            f"| {v['drop_points_test']:.2f} / {v['drop_points_select']:.2f} "
            f"| {b['params'] / 1e6:.3f}M → {p['params'] / 1e6:.3f}M ({v['params_ratio']:.1f}x) "
            f"| {b['macs'] / 1e6:.1f}M → {p['macs'] / 1e6:.1f}M ({v['macs_ratio']:.1f}x) "
            f"| {b['checkpoint_bytes'] / 1e6:.2f} → {p['checkpoint_bytes'] / 1e6:.2f} "
            f"(-{100 * v['size_reduction']:.0f} %) | {speed} | {e['best_iteration']} "
            f"({e['stop_reason']}) | {met} |"
        )
    return "\n".join(lines)


def summary(paths: list[Path], name: str = "vgg") -> str:
    """One row per result file (one loop batch order each) and the mean ± std across them.

    The requirement is checked on the mean drop (one test image moves a single run by 0.28
    points) and on the worst run's parameter ratio and speed-ups.
    """
    rows, drops, ratios, speeds = [], [], [], {"1": [], "16": []}
    req = None
    for path in paths:
        e = json.loads(path.read_text())["tasks"][name]
        v, req = e["verdict"], e["spec"]["requirements"]
        drops.append(v["drop_points_test"])
        ratios.append(v["params_ratio"])
        speed = e.get("latency", {}).get("speedup")
        for b in speeds:
            speeds[b].append(speed[b] if speed else float("nan"))
        m = v["metric"]
        rows.append(
            f"| {e['settings']['order_seed']} | {100 * e['baseline'][f'test_{m}']:.2f} → "
            f"{100 * e['pruned'][f'test_{m}']:.2f} | {v['drop_points_test']:.2f} / "
            f"{v['drop_points_select']:.2f} | {v['params_ratio']:.1f}x | {v['macs_ratio']:.1f}x "
            f"| {speeds['1'][-1]:.2f}x / {speeds['16'][-1]:.2f}x | {e['best_iteration']} "
            f"({e['stop_reason']}) |"
        )

    def mean_std(values: list[float]) -> str:
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.2f} ± {sd:.2f}"

    rows.append(
        f"| mean ± std | | {mean_std(drops)} (test) | {mean_std(ratios)}x (min "
        f"{min(ratios):.1f}x) | | {mean_std(speeds['1'])}x / {mean_std(speeds['16'])}x (min "
        f"{min(speeds['1']):.2f}x / {min(speeds['16']):.2f}x) | |"
    )
    head = (
        "| batch order | test accuracy % | drop, points (test / select) | params | MACs "
        "| speed-up b1 / b16 | stopped at |\n| --- | --- | --- | --- | --- | --- | --- |"
    )
    met = (
        statistics.mean(drops) <= req["drop_points"] + 1e-9
        and min(ratios) >= req["params_ratio"]
        and min(min(v) for v in speeds.values()) >= req["speedup"]
    )
    verdict_line = (
        f"\nmean drop ≤ {req['drop_points']} points, every run ≥ {req['params_ratio']:g}x fewer "
        f"params and ≥ {req['speedup']:g}x faster at batch 1 and 16: {'met' if met else 'NOT met'}"
    )
    return "\n".join([head, *rows]) + "\n" + verdict_line


# ----- main ----------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="+", default=list(SPECS), choices=list(SPECS))
    p.add_argument("--vgg-width", type=float, default=None, help="VGG16-BN width (default 0.5)")
    p.add_argument("--unet-base", type=int, default=None, help="U-Net base width (default 8)")
    p.add_argument("--threads", type=int, default=2, help="threads of the accuracy pass")
    p.add_argument(
        "--stop-margin",
        type=float,
        default=1.0,
        help="the loop's max_metric_drop is this fraction of the target's bound (below 1: a "
        "margin for the selection/test difference)",
    )
    p.add_argument(
        "--recovery",
        type=int,
        default=None,
        help="PruneConfig.recovery of the loop (default: the task's, 2 for vgg, 0 for unet)",
    )
    p.add_argument(
        "--order-seed",
        type=int,
        default=0,
        help="seed of the loop's batch order only (data split and baseline stay the same)",
    )
    p.add_argument(
        "--vgg-targets", nargs="+", metavar="TARGET", help='VGG loop targets, e.g. "params=-75%%"'
    )
    p.add_argument(
        "--latency-batch", type=int, help="batch size the loop times (for latency targets)"
    )
    p.add_argument(
        "--variant", default="", help="suffix of the run and pruned folders (keeps other runs)"
    )
    p.add_argument("--latency-only", action="store_true", help="time the saved checkpoints")
    p.add_argument("--latency-threads", type=int, default=2)
    p.add_argument("--latency-rounds", type=int, default=3)
    p.add_argument("--cache-dir", default="/tmp/filterprune_bench/tasks")
    p.add_argument("--out", default=None, help="JSON path (default results/tasks.json)")
    p.add_argument("--quick", action="store_true", help="smoke run (numbers mean nothing)")
    p.add_argument("--render", action="store_true", help="print the table of --out and exit")
    p.add_argument(
        "--summary",
        nargs="+",
        type=Path,
        metavar="JSON",
        help="print the VGG runs of these result files (one batch order each) with their mean",
    )
    args = p.parse_args(argv)
    if args.out is None:
        args.out = str(ROOT / "results" / ("tasks_quick.json" if args.quick else "tasks.json"))
    return args


def specs(args: argparse.Namespace) -> dict[str, Spec]:
    out = {}
    for name in args.tasks:
        spec = SPECS[name]
        if name == "vgg" and args.vgg_width is not None:
            spec = replace(spec, model_kwargs={**spec.model_kwargs, "width": args.vgg_width})
        if name == "unet" and args.unet_base is not None:
            spec = replace(spec, model_kwargs={**spec.model_kwargs, "base": args.unet_base})
        if name == "vgg" and args.vgg_targets:
            spec = replace(spec, targets=tuple(args.vgg_targets))
        if args.latency_batch:
            spec = replace(spec, latency_batch=args.latency_batch)
        if args.quick:
            spec = replace(spec, **QUICK[name])
        out[name] = spec
    return out


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    out = Path(args.out)
    if args.render:
        print(markdown(json.loads(out.read_text())))
        return
    if args.summary:
        print(summary(args.summary))
        return
    if args.latency_only:
        results = json.loads(out.read_text())
        for name, entry in results["tasks"].items():
            spec = Spec(**{**entry["spec"], "input_shape": tuple(entry["spec"]["input_shape"])})
            spec = replace(spec, targets=tuple(spec.targets))
            info = machine_info(threads=args.latency_threads)
            entry["latency"] = latency_pass(name, spec, entry, args)
            entry["latency"]["machine"] = info
            entry["verdict"] = verdict(name, entry)
            print(f"[{name}] latency {entry['latency']['median_ms']}", flush=True)
    else:
        torch.set_num_threads(args.threads)
        results = json.loads(out.read_text()) if out.exists() else {"benchmark": "tasks"}
        results.setdefault("tasks", {})
        for name, spec in specs(args).items():  # other tasks' entries in the file are kept
            info = machine_info(threads=args.threads)
            entry = run_task(name, spec, args)
            info["loadavg_at_end"] = list(os.getloadavg())
            entry["machine"] = info
            entry["settings"] = {k: v for k, v in vars(args).items() if k != "out"}
            entry["verdict"] = verdict(name, entry)
            results["tasks"][name] = entry
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print()
    print(markdown(results))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
