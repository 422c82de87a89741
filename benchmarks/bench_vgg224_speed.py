"""Real CPU speed-up at the paper's operating point: VGG-16 at 224x224, 30.96 -> 8.0 GFLOPs.

Molchanov et al. (2017) report 2.1x on CPU there; Torch-Pruning's uniform L1 pruning to 8.04
GFLOPs measured 2.8x (batch 1) and 3.4x (batch 16) on this kind of machine. The levers are *which*
layers lose channels and hardware-friendly widths, so this script prunes the same VGG-16 (no
BatchNorm, as in the paper) to the same FLOPs several ways and measures each:

- ``uniform``: the same fraction of every layer (per-group selection), like the peer's run;
- ``global-lambda=X``: global lowest-K of L2-normalised L1 scores minus X times the normalised
  cost of a channel (Molchanov's regularisation, larger X = costly layers first), with the cost
  ``flops`` (the paper's), ``memory`` (activation elements) or ``latency`` (each layer timed on
  this machine at batch ``cost_batch``); the classifier is left to the FLOPs budget, which
  barely touches it;
- ``+classifier=F``: after the convolutions reach the budget, F of the classifier's hidden units
  go too (lowest L1). They hold under 1 % of the FLOPs but 119 M of the 138 M weights, which a
  batch-1 forward must read.

Every strategy rounds widths to ``round_to`` (8 unless said), but ``widths=measured``, which
chooses each width on this machine's latency staircase at ``cost_batch`` (the latency lookup
table, :mod:`filterprune.measure.staircase`). Weights are random (latency does
not depend on them; with random weights the L1 scores carry no information, so the cost term
alone decides the global split). Uniform pruning is one shot, its fraction bisected to land at or
just below the target; global pruning goes in small steps until the MACs are at or below the
target. Latency: ``torch.utils.benchmark`` with warm-up, 2 threads, every model once per round,
alternating rounds, median of the round medians.

Run:  PYTHONPATH=src .venv/bin/python benchmarks/bench_vgg224_speed.py [--quick]
Writes benchmarks/results/vgg224_speed.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

import filterprune as fp
from filterprune.measure import compare_latency
from filterprune.models import create_model

TARGET_GFLOPS = 8.0


def _prune_uniform(model, x, *, round_to: int, target_macs: float) -> tuple[torch.nn.Module, int]:
    """One-shot per-layer pruning: bisect the fraction so MACs land at or just below the target.

    Every trial prunes a fresh copy of ``model``; the returned model is the smallest fraction whose
    MACs are at or below ``target_macs``. The count of trials is returned as the steps.
    """
    graph = fp.analyze(model, x)
    lo, hi, best, trials = 0.0, 0.95, None, 0
    while hi - lo > 2e-3:
        mid = (lo + hi) / 2
        trial, trial_graph = copy.deepcopy((model, graph))
        fp.prune(
            trial, x, amount=mid, criterion="l1", round_to=round_to, graph=trial_graph,
            scope="per_group", layer_types=(),
        )  # fmt: skip
        trials += 1
        if fp.count(trial, x).macs <= target_macs:
            hi, best = mid, trial
        else:
            lo = mid
    if best is None:
        raise RuntimeError("no fraction reaches the MACs target")
    return best, trials


@dataclass(frozen=True)
class Strategy:
    label: str
    scope: str  # "per_group" (uniform) or "global"
    round_to: int = 8
    lam: float = 0.0
    cost: str = "flops"
    cost_batch: int = 1  # batch size of the example the cost is measured at
    classifier: float = 0.0  # fraction of the classifier's hidden units removed afterwards
    widths: str = "any"  # "measured": widths on this machine's latency staircases at cost_batch

    @property
    def key(self) -> str:
        text = self.label
        if self.scope == "global" and self.cost != "flops":
            text += f" cost={self.cost}" + (f"@b{self.cost_batch}" if self.cost_batch > 1 else "")
        if self.classifier:
            text += f" +classifier={self.classifier:g}"
        if self.widths == "measured":
            return f"{text} widths=measured"
        return f"{text} round_to={self.round_to}"


def _prune_global(model, x, s: Strategy, target_macs: float) -> tuple[torch.nn.Module, int]:
    """Prune the convolutions in global steps until MACs are within 3 % below ``target_macs``.

    A step that overshoots below 97 % of the target is undone and the step halved. The classifier
    is ignored here (the FLOPs budget is the convolutions'). The cost is measured at
    ``s.cost_batch`` copies of ``x``; MACs are counted at ``x``.
    """
    xc = x.expand(s.cost_batch, *x.shape[1:]).contiguous()
    graph = fp.analyze(model, xc, ignore=[nn.Linear])
    steps = 0
    macs = fp.count(model, x).macs
    step = 0.08
    while macs > target_macs and step > 1e-3:
        frac = min(step, 1 - target_macs / macs)
        saved = copy.deepcopy((model, graph))
        plan = fp.prune(
            model,
            xc,
            amount=frac,
            scope="global",
            criterion="l1",
            flops_reg=s.lam,
            cost=s.cost,
            round_to=s.round_to,
            widths=s.widths,
            graph=graph,
            max_fraction=1.0,  # as these strategies were measured: no per-layer cap
            layer_types=(),
        )
        steps += 1
        new = fp.count(model, x).macs
        if plan.is_empty():
            break
        if new < 0.97 * target_macs:
            model, graph = saved
            step /= 2
            continue
        macs = new
        print(f"  {s.key}: step {steps}, {2 * macs / 1e9:.2f} GFLOPs", flush=True)
    return model, steps


def _with_widths(base: nn.Module, widths: list[int], hidden: list[int]) -> nn.Module:
    """``base`` with its convolutions and linear layers rebuilt at these output widths (random
    weights: the time of a forward pass does not depend on them)."""
    model = copy.deepcopy(base)
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    outs = list(widths) + list(hidden)
    if len(outs) != len(layers):
        raise SystemExit(f"{len(outs)} widths for {len(layers)} layers")
    previous = None
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if not isinstance(child, (nn.Conv2d, nn.Linear)):
                continue
            out = outs[layers.index(child)]
            if isinstance(child, nn.Conv2d):
                cin = child.in_channels if previous is None else previous
                new = nn.Conv2d(cin, out, child.kernel_size, child.stride, child.padding)
            else:  # the first linear layer reads the last conv's channels times 7 x 7
                cin = child.in_features
                if previous is not None and isinstance(layers[layers.index(child) - 1], nn.Conv2d):
                    cin = (
                        previous * child.in_features // layers[layers.index(child) - 1].out_channels
                    )
                elif previous is not None:
                    cin = previous
                new = nn.Linear(cin, out)
            setattr(parent, name, new)
            previous = out
    return model.eval()


def _prune(model, x, s: Strategy, target_macs: float) -> tuple[torch.nn.Module, int]:
    if s.scope == "per_group":
        # small per-group steps never remove anything from the narrow layers once ``round_to``
        # rounds them back up, so uniform pruning is one shot with a bisected fraction
        model, steps = _prune_uniform(model, x, round_to=s.round_to, target_macs=target_macs)
    else:
        model, steps = _prune_global(model, x, s, target_macs)
    if s.classifier:
        fp.prune(
            model, x, amount=s.classifier, ignore=[nn.Conv2d], round_to=s.round_to,
            scope="per_group", layer_types=(),
        )  # fmt: skip
    return model, steps


STRATEGIES = (
    Strategy("uniform", "per_group"),
    Strategy("uniform", "per_group", round_to=1),
    Strategy("global-lambda=1", "global", lam=1.0),
    Strategy("global-lambda=0.1", "global", lam=0.1),
    Strategy("global-lambda=1", "global", lam=1.0, classifier=0.75),
    Strategy("global-lambda=1", "global", lam=1.0, cost="memory", classifier=0.75),
    Strategy("global-lambda=0.3", "global", lam=0.3, cost="memory", classifier=0.75),
    Strategy("global-lambda=1", "global", lam=1.0, cost="latency", cost_batch=16, classifier=0.75),
    Strategy("uniform", "per_group", classifier=0.75),
    Strategy(
        "global-lambda=1",
        "global",
        lam=1.0,
        cost="latency",
        cost_batch=16,
        classifier=0.75,
        round_to=1,
        widths="measured",
    ),  # fmt: skip
)
QUICK = (STRATEGIES[0], STRATEGIES[4])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer strategies and repeats")
    parser.add_argument("--rounds", type=int, default=5, help="alternating latency rounds (5)")
    parser.add_argument(
        "--only", nargs="+", metavar="KEY", help="run these strategies only (keys as printed)"
    )
    parser.add_argument("--out", type=Path, help="JSON path (default results/vgg224_speed.json)")
    parser.add_argument(
        "--phase", choices=("both", "prune", "time"), default="both",
        help="prune: write the widths only (pruning may run on a busy machine); time: rebuild "
        "each strategy's model from the widths in --out and time it beside the original "
        "(latency does not depend on the random weights; run it on an idle machine)",
    )  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(2)
    x = torch.randn(1, 3, 224, 224)
    batch_sizes = (1, 16)
    reps = {1: (2, 10), 16: (1, 3)} if not args.quick else {1: (1, 3), 16: (1, 1)}
    rounds = 1 if args.quick else args.rounds

    torch.manual_seed(0)
    base = create_model("vgg16", head="imagenet", num_classes=1000).eval()
    base_counts = fp.count(base, x)
    strategies = QUICK if args.quick else STRATEGIES
    if args.only:
        unknown = set(args.only) - {s.key for s in STRATEGIES}
        if unknown:
            parser.error(
                f"unknown --only keys {sorted(unknown)}; known: {[s.key for s in STRATEGIES]}"
            )
        strategies = [s for s in STRATEGIES if s.key in set(args.only)]
    target = TARGET_GFLOPS / 2 * 1e9
    path = args.out or Path(__file__).parent / "results" / "vgg224_speed.json"
    results, models = [], {"original": base}
    if args.phase == "time":
        results = json.loads(path.read_text())["results"]
        for row in results:
            models[row["strategy"]] = _with_widths(base, row["widths"], row["classifier_widths"])
        strategies = []
    for strat in strategies:
        model = copy.deepcopy(base)
        t0 = time.perf_counter()
        model, steps = _prune(model, x, strat, target)
        counts = fp.count(model, x)
        models[strat.key] = model
        results.append(
            {
                "strategy": strat.key,
                **asdict(strat),
                "steps": steps,
                "prune_seconds": time.perf_counter() - t0,
                "gflops": 2 * counts.macs / 1e9,
                "params": counts.params,
                "flops_ratio": base_counts.macs / counts.macs,
                "widths": [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)],
                "classifier_widths": [
                    m.out_features for m in model.modules() if isinstance(m, nn.Linear)
                ],
            }
        )
        print(f"{strat.key}: {results[-1]['gflops']:.2f} GFLOPs, widths {results[-1]['widths']}")
    if args.phase == "prune":
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps({"torch": torch.__version__, "results": results}, indent=1))
        print(f"wrote {path} (widths only; time them with --phase time)")
        return

    # Latency: each pruned model timed beside the original in alternating rounds
    # (filterprune.measure.compare_latency); speed-up = median of the round ratios.
    median: dict[str, dict[int, float]] = {"original": {}}
    per_round: dict[str, dict[int, list[float]]] = {"original": {}}
    for row, key in zip(results, list(models)[1:], strict=True):
        median[key], per_round[key] = {}, {}
        for b in batch_sizes:
            warm, rep = reps[b]
            (c,) = compare_latency(
                base, models[key], x, batch_sizes=(b,), rounds=rounds, repeats=rep,
                warmup=warm, threads=2,
            )  # fmt: skip
            median[key][b], per_round[key][b] = c.model.median_ms, list(c.model.round_medians_ms)
            median["original"][b] = c.reference.median_ms  # the last comparison's original
            per_round["original"][b] = list(c.reference.round_medians_ms)
            row[f"speedup_b{b}"] = c.speedup
            row[f"speedup_range_b{b}"] = [c.speedup_low, c.speedup_high]
            row[f"flags_b{b}"] = list(c.flags)
        row["latency_ms"] = {str(b): median[key][b] for b in batch_sizes}
        row["latency_per_round_ms"] = {str(b): per_round[key][b] for b in batch_sizes}
        print(f"{key}: x{row['speedup_b1']:.2f} (b1) x{row['speedup_b16']:.2f} (b16)")
    out = {
        "torch": torch.__version__,
        "threads": 2,
        "input": [1, 3, 224, 224],
        "latency": {
            "rounds": rounds,
            "per_round": {str(b): {"warmup": reps[b][0], "repeats": reps[b][1]} for b in reps},
            "statistic": "speed-up: median of per-round ratios (compare_latency); latency: median of round medians",
            "loadavg_after": list(os.getloadavg()),
        },
        "original": {
            "gflops": 2 * base_counts.macs / 1e9,
            "params": base_counts.params,
            "latency_ms": {str(b): median["original"][b] for b in batch_sizes},
            "latency_per_round_ms": {str(b): per_round["original"][b] for b in batch_sizes},
        },
        "target_gflops": TARGET_GFLOPS,
        "results": results,
    }
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
