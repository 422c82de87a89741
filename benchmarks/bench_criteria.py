"""Criteria comparison: which filters to remove, at an equal MACs budget reached the same way.

One model (VGG16-BN, CIFAR head, ``--width``, default 0.25) is trained once per seed on the
built-in digits set (scikit-learn's 1797 handwritten digits upscaled to 32x32 RGB, stratified
80/20 split whose seed is the run seed) and cached. Then, from that same baseline, every criterion
prunes it **iteratively and globally** along one MACs schedule:

- ``--steps`` pruning steps (default 5); step ``k`` removes channels until the MACs of a batch-1
  32x32 forward pass are at or just below ``base * (1 - R * k / steps)`` (at most
  ``--macs-tolerance`` = 0.5 % of the baseline MACs below) with ``R`` = ``--macs-reduction``
  (default 0.6, i.e. ``macs=-60%`` at the end);
- after every step ``--finetune`` Adam steps (default 20, lr ``--lr``) and an evaluation;
- after the last step one final finetune of ``--final-finetune`` steps (default 100: the first
  two thirds at ``--lr``, the rest at ``--lr / 5``), then the reported accuracy.

How each step meets its MACs target, identically for every criterion: the criterion scores the
channels of the current model once (data-driven ones on ``--ranking-batches`` training batches of
64, in eval mode, the same batches for every criterion), then the smallest number of channels
``K`` whose removal (lowest scores first, one global ranking) brings the MACs to the target is
found by bisection on copies of the model, and those ``K`` channels are removed. Finetuning
batches, dropout and ranking batches are seeded by (seed, step), so within a seed every criterion
sees the same data in the same order: differences are paired.

Criteria (filterprune ones use per-layer L2 normalisation of the scores, as in Molchanov et al.
2017, https://arxiv.org/abs/1611.06440, and the library's global selection):

- ``taylor``: the 2017 activation Taylor criterion; ``taylor+flops_reg=1e-3`` /
  ``taylor+flops_reg=1e-1``: the same minus ``lambda`` times the normalised MACs cost of a channel;
- ``l1``, ``bn_scale``, ``kmeans`` (Ridurre variant; it clusters each layer into
  ``(1 - amount)`` of its filters, so it is given ``amount = 1 - sqrt(target / MACs now)``, the
  channel fraction that would meet the step's target if MACs fell with the square of the
  channels), ``random`` (seeded per seed and step);
- ``tp_taylor`` / ``tp_magnitude``: Torch-Pruning 1.6's ``BasePruner(global_pruning=True)`` with
  ``TaylorImportance()`` (gradients accumulated over the same ranking batches) or
  ``MagnitudeImportance(p=1)``, TP's default group reduction and "mean" normaliser, last Linear
  ignored; its ``pruning_ratio`` is bisected to the same MACs target.

MACs and parameters are counted with ``filterprune.measure.count`` (FlopCounterMode) for every
criterion, so TP's results are measured by the same counter. Accuracy is on the 360 validation
images (one image = 0.28 points).

Run from the repository root (Torch-Pruning is a benchmark-only extra)::

    PYTHONPATH=src .venv/bin/python benchmarks/bench_criteria.py      # -> results/criteria.json
    PYTHONPATH=src .venv/bin/python benchmarks/bench_criteria.py --quick  # smoke, ~1 minute

Baselines are cached in ``--cache-dir`` (default ``/tmp/filterprune_bench/criteria``); delete it
to retrain.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from _machine import machine_info
from torch import nn
from torch.utils.data import DataLoader

import filterprune as fp
from filterprune.measure import count
from filterprune.models import create_model
from filterprune.tasks import builtin_data, get_task

ROOT = Path(__file__).resolve().parent
EXAMPLE = (1, 3, 32, 32)

# name -> (library, criterion or TP importance, flops_reg)
CRITERIA: dict[str, tuple[str, str, float]] = {
    "taylor": ("fp", "taylor", 0.0),
    "taylor+flops_reg=1e-3": ("fp", "taylor", 1e-3),
    "taylor+flops_reg=1e-1": ("fp", "taylor", 1e-1),
    "l1": ("fp", "l1", 0.0),
    "bn_scale": ("fp", "bn_scale", 0.0),
    "kmeans": ("fp", "kmeans", 0.0),
    "random": ("fp", "random", 0.0),
    "tp_taylor": ("tp", "taylor", 0.0),
    "tp_magnitude": ("tp", "magnitude", 0.0),
}


# ----- environment ---------------------------------------------------------------------------
# ----- data and training ---------------------------------------------------------------------
class Data:
    """Digits train/val tensors of one seed and seeded loaders over them."""

    def __init__(self, seed: int, batch_size: int) -> None:
        self.seed, self.batch_size = seed, batch_size
        self.train, self.val = builtin_data("classify", seed=seed, image_size=32)
        self.val_loader = DataLoader(self.val, batch_size=256)

    def loader(self, *key: int | str) -> DataLoader:
        """A shuffled training loader whose order depends only on (seed, *key)."""
        gen = torch.Generator().manual_seed(_seed(self.seed, *key))
        return DataLoader(self.train, batch_size=self.batch_size, shuffle=True, generator=gen)

    def ranking_batches(self, step: int, n: int) -> list[Any]:
        it = iter(self.loader("rank", step))
        return [next(it) for _ in range(n)]


def _seed(*key: int | str) -> int:
    """A stable 31-bit seed from a key (Python's hash() of str is salted per process)."""
    text = "/".join(map(str, key))
    value = 0
    for ch in text:
        value = (value * 131 + ord(ch)) % (2**31 - 1)
    return value


def train(model: nn.Module, data: Data, steps: int, lr: float, key: tuple) -> None:
    """Adam, ``steps`` steps: 2/3 at ``lr``, the rest at ``lr / 5`` (a fresh optimizer each)."""
    task = get_task("classify")
    first = (2 * steps) // 3
    for part, (n, rate) in enumerate(((first, lr), (steps - first, lr / 5))):
        if n <= 0:
            continue
        torch.manual_seed(_seed(*key, part))
        task.finetune(model, data.loader(*key, part), steps=n, lr=rate, optimizer="adam")


def evaluate(model: nn.Module, data: Data) -> float:
    return float(get_task("classify").evaluate(model, data.val_loader)["accuracy"])


def baseline(args: argparse.Namespace, data: Data) -> tuple[nn.Module, dict[str, Any]]:
    """Train (or load from the cache) the baseline of ``data.seed``."""
    from safetensors.torch import load_file, save_file

    torch.manual_seed(data.seed)
    model = create_model("vgg16_bn", width=args.width, head="cifar", num_classes=10)
    stem = f"vgg16_bn-w{args.width:g}-seed{data.seed}-steps{args.baseline_steps}-lr{args.base_lr:g}"
    path = Path(args.cache_dir) / f"{stem}.safetensors"
    info: dict[str, Any] = {"checkpoint": str(path)}
    if path.exists():
        model.load_state_dict(load_file(str(path)))
        info["cached"] = True
    else:
        start = time.perf_counter()
        train(model, data, args.baseline_steps, args.base_lr, ("base", data.seed))
        info.update(cached=False, train_seconds=round(time.perf_counter() - start, 1))
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    info["accuracy"] = evaluate(model, data)
    return model, info


# ----- one pruning step to a MACs target -----------------------------------------------------
class FixedScores:
    """A criterion object handing back scores computed earlier (so bisection ranks once)."""

    needs_data = False

    def __init__(self, scores: dict[str, torch.Tensor]) -> None:
        self.scores = scores

    def __call__(self, graph: Any, **context: Any) -> dict[str, torch.Tensor]:
        return {k: v.clone() for k, v in self.scores.items()}


def _macs(model: nn.Module, x: torch.Tensor) -> int:
    return count(model, x).macs


def bisect_count(
    total: int, trial: Callable[[int], tuple[nn.Module, int]], target: float, tol: float
) -> tuple[nn.Module, int, int]:
    """Smallest ``k`` with ``trial(k)`` MACs <= target: doubling from 2 % of ``total``, then
    bisection, stopping early once MACs are within ``tol`` below the target. MACs fall with
    ``k`` up to about 90 % of the channels (beyond that Torch-Pruning skips layers it would
    empty, so the search never goes there)."""
    lo, cap = 0, max(1, math.floor(0.9 * total))  # MACs(0) > target: nothing removed yet
    hi = max(1, math.ceil(0.02 * total))
    best = trial(hi)
    while best[1] > target and hi < cap:
        lo, hi = hi, min(cap, 2 * hi)
        best = trial(hi)
    if best[1] > target:  # cannot reach it: take the most the search allows
        return best[0], hi, best[1]
    while hi - lo > 1 and best[1] < target - tol:
        mid = (lo + hi) // 2
        model, macs = trial(mid)
        if macs <= target:
            hi, best = mid, (model, macs)
        else:
            lo = mid
    return best[0], hi, best[1]


def fp_step(
    model: nn.Module,
    x: torch.Tensor,
    name: str,
    flops_reg: float,
    batches: list[Any],
    target: float,
    tol: float,
    option_seed: int,
) -> tuple[nn.Module, dict[str, Any]]:
    """Rank once with a filterprune criterion, then remove the fewest channels meeting target."""
    task = get_task("classify")
    graph = fp.analyze(model, x)
    total = sum(g.size for g in graph.prunable)
    options = {"seed": option_seed} if name in ("random", "kmeans") else {}
    rank_start = time.perf_counter()
    context = {}
    if name == "kmeans":  # clusters keep 1 - amount per layer: estimate the amount needed
        context["amount"] = 1 - math.sqrt(target / _macs(model, x))  # MACs ~ channels squared
    raw = fp.rank(
        model,
        x,
        batches=batches,
        loss_fn=task.loss,
        criterion=name,
        normalize=False,
        graph=graph,
        criterion_options=options,
        **context,
    )
    criterion = FixedScores(raw)
    rank_seconds = time.perf_counter() - rank_start

    def trial(k: int) -> tuple[nn.Module, int]:
        m, g = copy.deepcopy((model, graph))
        fp.prune(
            m,
            x,
            amount=k / total,
            scope="global",
            criterion=criterion,
            normalize=True,
            flops_reg=flops_reg,
            graph=g,
            max_fraction=1.0,  # as the study was measured: no per-layer cap, every layer kind
            layer_types=(),
        )
        return m, _macs(m, x)

    pruned, k, macs = bisect_count(total, trial, target, tol)
    return pruned, {"removed": k, "rank_seconds": round(rank_seconds, 2)}


def tp_step(
    model: nn.Module, x: torch.Tensor, name: str, batches: list[Any], target: float, tol: float
) -> tuple[nn.Module, dict[str, Any]]:
    """Torch-Pruning global pruning with its ratio bisected to the same MACs target."""
    import torch_pruning as tp

    task = get_task("classify")
    grads: list[torch.Tensor | None] = []
    rank_start = time.perf_counter()
    if name == "taylor":  # TP's Taylor reads .grad: accumulate over the ranking batches
        was = model.training
        model.eval()
        model.zero_grad(set_to_none=True)
        for inputs, targets in batches:
            task.loss(model(inputs), targets).backward()
        model.train(was)
        grads = [
            p.grad.detach().clone() if p.grad is not None else None for p in model.parameters()
        ]
        model.zero_grad(set_to_none=True)
    rank_seconds = time.perf_counter() - rank_start
    total = (
        sum(
            m.out_features if isinstance(m, nn.Linear) else m.out_channels
            for m in model.modules()
            if isinstance(m, nn.Conv2d | nn.Linear)
        )
        - _last_linear(model).out_features
    )

    def trial(k: int) -> tuple[nn.Module, int]:
        m = copy.deepcopy(model)
        for p, g in zip(m.parameters(), grads, strict=False):
            p.grad = None if g is None else g.clone()
        importance = (
            tp.importance.TaylorImportance()
            if name == "taylor"
            else tp.importance.MagnitudeImportance(p=1)
        )
        pruner = tp.pruner.BasePruner(
            m,
            x,
            importance=importance,
            global_pruning=True,
            pruning_ratio=(k - 0.25) / total,  # TP removes total - int(total * (1 - ratio))
            ignored_layers=[_last_linear(m)],
        )
        pruner.step()
        m.zero_grad(set_to_none=True)
        return m, _macs(m, x)

    pruned, k, macs = bisect_count(total, trial, target, tol)
    return pruned, {"removed": k, "rank_seconds": round(rank_seconds, 2)}


def _last_linear(model: nn.Module) -> nn.Linear:
    return [m for m in model.modules() if isinstance(m, nn.Linear)][-1]


# ----- one run -------------------------------------------------------------------------------
def run_one(
    args: argparse.Namespace, data: Data, base: nn.Module, base_acc: float, label: str
) -> dict[str, Any]:
    lib, name, flops_reg = CRITERIA[label]
    x = torch.zeros(EXAMPLE)
    model = copy.deepcopy(base)
    start = time.perf_counter()
    base_counts = count(model, x)
    steps = []
    tol = args.macs_tolerance * base_counts.macs
    for k in range(1, args.steps + 1):
        target = base_counts.macs * (1 - args.macs_reduction * k / args.steps)
        batches = data.ranking_batches(k, args.ranking_batches)
        if lib == "fp":
            model, info = fp_step(
                model, x, name, flops_reg, batches, target, tol, _seed(data.seed, "opt", k)
            )
        else:
            model, info = tp_step(model, x, name, batches, target, tol)
        macs_pruned = _macs(model, x)
        torch.manual_seed(_seed(data.seed, "ft", k))
        get_task("classify").finetune(
            model, data.loader("ft", k), steps=args.finetune, lr=args.lr, optimizer="adam"
        )
        steps.append(
            {
                "step": k,
                "target_macs": round(target),
                "macs": macs_pruned,
                "accuracy": evaluate(model, data),
                **info,
            }
        )
    before_final = steps[-1]["accuracy"]
    train(model, data, args.final_finetune, args.lr, ("final", data.seed))
    counts = count(model, x)
    acc = evaluate(model, data)
    widths = [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]
    return {
        "criterion": label,
        "seed": data.seed,
        "baseline_accuracy": base_acc,
        "accuracy": acc,
        "accuracy_before_final_finetune": before_final,
        "drop_points": round(100 * (base_acc - acc), 3),
        "baseline_macs": base_counts.macs,
        "macs": counts.macs,
        "macs_reduction": 1 - counts.macs / base_counts.macs,
        "baseline_params": base_counts.params,
        "params": counts.params,
        "conv_widths": widths,
        "steps": steps,
        "seconds": round(time.perf_counter() - start, 1),
    }


# ----- summary -------------------------------------------------------------------------------
def _stats(values: list[float]) -> dict[str, float]:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


REFERENCES = ("taylor", "taylor+flops_reg=1e-1")  # paired differences are taken against these


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by: dict[str, dict[int, dict[str, Any]]] = {}
    for r in runs:
        by.setdefault(r["criterion"], {})[r["seed"]] = r
    out = []
    for label in CRITERIA:
        if label not in by:
            continue
        rs = list(by[label].values())
        row: dict[str, Any] = {
            "criterion": label,
            "seeds": sorted(by[label]),
            "accuracy": _stats([100 * r["accuracy"] for r in rs]),
            "drop_points": _stats([r["drop_points"] for r in rs]),
            "accuracy_before_final_finetune": _stats(
                [100 * r["accuracy_before_final_finetune"] for r in rs]
            ),
            "macs_reduction": _stats([100 * r["macs_reduction"] for r in rs]),
            "params_reduction": _stats(
                [100 * (1 - r["params"] / r["baseline_params"]) for r in rs]
            ),
            "narrowest_conv": _stats([min(r["conv_widths"]) for r in rs]),
            "collapsed_runs": sum(min(r["conv_widths"]) <= 3 for r in rs),
            "paired": {},
        }
        for ref in REFERENCES:
            if ref == label or ref not in by:
                continue
            diffs = [
                100 * (by[ref][s]["accuracy"] - r["accuracy"])
                for s, r in by[label].items()
                if s in by[ref]
            ]
            if diffs:
                row["paired"][ref] = {
                    "ref_minus_this_points": _stats(diffs),
                    "ref_at_least_as_good_seeds": sum(d >= 0 for d in diffs),
                    "seeds": len(diffs),
                }
        out.append(row)
    return out


def _fmt(s: dict[str, float], digits: int = 2) -> str:
    return (
        f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f} "
        f"[{s['min']:.{digits}f}, {s['max']:.{digits}f}]"
    )


def _paired(row: dict[str, Any], ref: str) -> str:
    p = row["paired"].get(ref)
    if p is None:
        return "–"
    d = p["ref_minus_this_points"]
    return f"{d['mean']:+.2f} ± {d['std']:.2f} ({p['ref_at_least_as_good_seeds']}/{p['seeds']})"


def markdown(summary: list[dict[str, Any]]) -> str:
    lines = [
        "| criterion | accuracy % mean ± std [min, max] | before final finetune % | "
        "MACs reduction % [min, max] | params reduction % | narrowest conv (min) | "
        + " | ".join(f"{ref} − this, points (seeds ≥)" for ref in REFERENCES)
        + " |",
        "| --- " * (6 + len(REFERENCES)) + "|",
    ]
    for row in summary:
        m = row["macs_reduction"]
        lines.append(
            f"| {row['criterion']} | {_fmt(row['accuracy'])} | "
            f"{_fmt(row['accuracy_before_final_finetune'])} | "
            f"{m['mean']:.1f} [{m['min']:.1f}, {m['max']:.1f}] | "
            f"{row['params_reduction']['mean']:.1f} | {row['narrowest_conv']['min']:.0f} | "
            + " | ".join(_paired(row, ref) for ref in REFERENCES)
            + " |"
        )
    return "\n".join(lines)


# ----- main ----------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--width", type=float, default=0.25, help="VGG16-BN width multiplier")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--criteria", nargs="+", default=list(CRITERIA), choices=list(CRITERIA))
    p.add_argument("--macs-reduction", type=float, default=0.6)
    p.add_argument("--steps", type=int, default=5, help="pruning steps to reach the target")
    p.add_argument(
        "--macs-tolerance",
        type=float,
        default=0.005,
        help="a step may land this fraction of the baseline MACs below its target",
    )
    p.add_argument("--finetune", type=int, default=20, help="Adam steps after each pruning step")
    p.add_argument("--final-finetune", type=int, default=100)
    p.add_argument("--ranking-batches", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=5e-4, help="finetuning learning rate")
    p.add_argument("--baseline-steps", type=int, default=450)
    p.add_argument("--base-lr", type=float, default=2e-3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cache-dir", default="/tmp/filterprune_bench/criteria")
    p.add_argument("--out", default=None, help="JSON path (default results/criteria.json)")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny width, 1 seed, few steps")
    p.add_argument(
        "--render",
        action="store_true",
        help="recompute the summary of the runs in --out and print the table (no training)",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.width, args.seeds, args.steps = 1 / 16, [0], 2
        args.finetune, args.final_finetune, args.baseline_steps = 5, 6, 30
        args.ranking_batches = 2
    if args.out is None:
        name = "criteria_quick.json" if args.quick else "criteria.json"
        args.out = str(ROOT / "results" / name)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.render:
        result = json.loads(Path(args.out).read_text())
        result["summary"] = summarize(result["runs"])
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
        print(markdown(result["summary"]))
        return
    torch.set_num_threads(args.threads)
    from threadpoolctl import threadpool_limits  # scikit-learn's KMeans threads (kmeans)

    threadpool_limits(args.threads)
    info = machine_info(threads=args.threads)
    start = time.perf_counter()
    runs, baselines = [], []
    for seed in args.seeds:
        data = Data(seed, args.batch_size)
        base, binfo = baseline(args, data)
        bcounts = count(base, torch.zeros(EXAMPLE))
        baselines.append({"seed": seed, **binfo, "params": bcounts.params, "macs": bcounts.macs})
        print(f"seed {seed}: baseline accuracy {binfo['accuracy']:.4f}", flush=True)
        for label in args.criteria:
            r = run_one(args, data, base, binfo["accuracy"], label)
            runs.append(r)
            print(
                f"  {label:24s} acc {r['accuracy']:.4f} (before final {r['accuracy_before_final_finetune']:.4f})"
                f"  MACs -{100 * r['macs_reduction']:.1f}%  params {r['params']}  {r['seconds']:.0f} s",
                flush=True,
            )
    info["loadavg_at_end"] = list(os.getloadavg())
    summary = summarize(runs)
    settings = {k: v for k, v in vars(args).items() if k not in ("out",)}
    settings["model"] = "vgg16_bn(head='cifar', num_classes=10)"
    settings["data"] = "builtin_data('classify', seed=seed, image_size=32): 1437 train / 360 val"
    result = {
        "benchmark": "criteria",
        "machine": info,
        "settings": settings,
        "seconds": round(time.perf_counter() - start, 1),
        "baselines": baselines,
        "summary": summary,
        "runs": runs,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print()
    print(markdown(summary))
    print(f"\nwrote {args.out} ({result['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
