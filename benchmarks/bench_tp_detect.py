"""Torch-Pruning on the zoo's detector, paired by seed with filterprune's default run.

docs/benchmarks.md, "Fashion-MNIST canvases": the baseline ``det-base`` of one seed (from
``benchmarks/canvases.sh``) pruned by Torch-Pruning 1.6.1's ``MagnitudePruner`` (L1 magnitude,
``global_pruning=True``, the heads' last 1x1 convs -- box and class outputs -- as
``ignored_layers``), iteratively, down to the MACs filterprune's ``macs=-50%`` run of the same
seed reached after each of its iterations (read from its ``log.jsonl``). Everything else is
filterprune's: the same finetuning between iterations (the loop's task callbacks, 100 steps at a
tenth of the baseline's rate), the same final finetuning (one pass over the training canvases
from the baseline's rate along a cosine), the same seeds per phase, and the test evaluation of
``filterprune eval --split test`` (the 1 000 ``t10k`` canvases). Benchmark only: filterprune
never imports Torch-Pruning.

Every C2f's ``cv1`` is first split into two convs, one per half (the same function), as
Torch-Pruning's own YOLOv8 example does (its graph mis-indexes ``chunk`` then ``cat``).
Torch-Pruning removes a fraction of channels per ``step()``, not MACs; each iteration here calls
``step()`` (``pruning_ratio=0.95`` in 400 steps, about 5 channels each) until the MACs are at or
below that iteration's target, then finetunes. TP's default ``max_pruning_ratio=1.0`` lets a
layer fall to one channel (it cut the stem to 1 of 16); ``--max-pruning-ratio 0.75`` caps each
layer at the share filterprune's default (25 % of a layer per iteration) allows in 5 iterations.

Needs filterprune with its ``detect`` extra and Torch-Pruning 1.6.1 installed apart from it::

    .venv/bin/python -m pip install --no-deps --target /work/runs/tp-lib torch-pruning==1.6.1
    PYTHONPATH=/work/runs/tp-lib OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python \\
        benchmarks/bench_tp_detect.py \\
        --base /work/runs/canvases-s1/det-base --fp-run /work/runs/canvases-s1/det-p50 \\
        --seed 1 --out benchmarks/results/canvases-tp-s1.json
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from filterprune import measure
from filterprune.config.sections import Budget
from filterprune.loop import task_callbacks
from filterprune.loop.state import seed_everything
from filterprune.recipes import Optimizer, load_data, load_model, model_factory
from filterprune.recipes.data import default_model_args
from filterprune.recipes.models import saved_model


def fp_targets(run: Path) -> tuple[list[int], dict[str, Any]]:
    """MACs after each of filterprune's iterations, and its final row, from ``log.jsonl``."""
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line]
    steps = [r for r in rows if isinstance(r["iteration"], int) and r["iteration"] > 0]
    finals = [r for r in rows if r["iteration"] == "final"]
    return [int(r["macs"]) for r in steps], (finals[-1] if finals else {})


class C2fSplit(nn.Module):
    """A C2f whose 1x1 ``cv1`` is two convs, one per half (the same function): Torch-Pruning's
    dependency graph mis-indexes ``chunk`` followed by ``cat`` (IndexError in its importance),
    and its YOLOv8 example (``examples/yolov8``, ``C2f_v2``) makes the same replacement."""

    def __init__(self, c2f: nn.Module) -> None:
        super().__init__()
        half = c2f.hidden
        self.cv0, self.cv1 = copy.deepcopy(c2f.cv1), copy.deepcopy(c2f.cv1)
        for part, sl in ((self.cv0, slice(0, half)), (self.cv1, slice(half, 2 * half))):
            conv, bn = part.conv, part.bn
            conv.weight = nn.Parameter(conv.weight.data[sl].clone())
            conv.out_channels = half
            bn.weight = nn.Parameter(bn.weight.data[sl].clone())
            bn.bias = nn.Parameter(bn.bias.data[sl].clone())
            bn.running_mean = bn.running_mean[sl].clone()
            bn.running_var = bn.running_var[sl].clone()
            bn.num_features = half
        self.blocks, self.cv2 = c2f.blocks, c2f.cv2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = [self.cv0(x), self.cv1(x)]
        for block in self.blocks:
            parts.append(block(parts[-1]))
        return self.cv2(torch.cat(parts, dim=1))


def split_c2f(net: nn.Module) -> None:
    """Replace every C2f of ``net`` in place by its :class:`C2fSplit`."""
    from filterprune.models.yolo import C2f

    for module in list(net.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, C2f):
                setattr(module, child_name, C2fSplit(child))


def head_outputs(net: nn.Module) -> list[nn.Module]:
    """The detector's output convs: each scale's last box and class 1x1 conv."""
    return [branch[-1] for head in net.heads for branch in (head.box, head.cls)]


def main() -> None:
    import torch_pruning as tp

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="a seed's det-base")
    parser.add_argument("--fp-run", type=Path, required=True, help="filterprune's det-p50 run")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True, help="JSON result")
    parser.add_argument("--steps-per-iteration", type=int, default=100)
    parser.add_argument("--tp-steps", type=int, default=400, help="TP iterative_steps")
    parser.add_argument(
        "--max-pruning-ratio", type=float, default=1.0,
        help="TP's per-layer cap on the removed share (default 1.0, TP's own default)",
    )  # fmt: skip
    parser.add_argument("--final-steps", type=int, help="default: one pass (prune's default)")
    args = parser.parse_args()
    started = time.time()
    torch.set_num_threads(1)

    info = saved_model(args.base)
    data = load_data(info["task"], saved=info["data"])  # the split prune_saved uses
    kwargs = default_model_args(info["model"], info["task"], data, info["model_args"])
    factory = model_factory(info["model"], kwargs)
    net, _ = load_model(args.base, factory, data.example)
    trained = Optimizer.from_dict(info.get("training"))
    hooks = task_callbacks(
        data.task,
        data.train_loader,
        data.val_loader,
        final_lr=trained.final_lr(),
        progress=True,
        **trained.for_finetuning().kwargs(),
    )
    net.eval()
    with torch.no_grad():
        before = net(data.example)
        split_c2f(net)
        after = net(data.example)
    gap = max((a - b).abs().max().item() for a, b in zip(after, before, strict=True))
    print(f"C2f split: max output difference {gap:.2e}")
    targets, fp_final = fp_targets(args.fp_run)
    final_steps = args.final_steps or len(data.train_loader)  # prune's default final pass
    print(f"targets (MACs per iteration, filterprune seed {args.seed}): {targets}")

    seed_everything(args.seed, 0)
    net.eval()
    example = data.example
    pruner = tp.pruner.MagnitudePruner(
        net,
        example,
        importance=tp.importance.MagnitudeImportance(p=1),
        global_pruning=True,
        pruning_ratio=0.95,
        iterative_steps=args.tp_steps,
        max_pruning_ratio=args.max_pruning_ratio,
        ignored_layers=head_outputs(net),
    )
    rows: list[dict[str, Any]] = []
    done_steps = 0
    for i, target in enumerate(targets, start=1):
        seed_everything(args.seed, i)
        tp_steps = 0
        net.eval()
        while measure.count(net, example).macs > target:
            if pruner.current_step >= pruner.iterative_steps:
                raise SystemExit(f"iteration {i}: TP ran out of steps above {target} MACs")
            pruner.step()
            tp_steps += 1
        counts = measure.count(net, example)
        done_steps += hooks.finetune(net, done_steps, Budget(args.steps_per_iteration))
        metrics = hooks.evaluate(net)
        rows.append(
            {"iteration": i, "tp_steps": tp_steps, "target_macs": target,
             "macs": counts.macs, "params": counts.params, "metrics": metrics}
        )  # fmt: skip
        print(f"iteration {i}: {tp_steps} TP steps, {counts.macs} MACs, {metrics}", flush=True)

    seed_everything(args.seed, "final")
    hooks.finetune(net, done_steps, Budget(final_steps, final=True))
    val = hooks.evaluate(net)
    test = load_data(info["task"], saved=info["data"], split="test")
    test_metrics = data.task.evaluate(net, test.val_loader, progress=True)
    counts = measure.count(net, example)
    result = {
        "tool": f"torch-pruning {tp.__version__} (dist 1.6.1) MagnitudePruner, L1, global",
        "max_pruning_ratio": args.max_pruning_ratio,
        "seed": args.seed,
        "base": str(args.base),
        "fp_run": str(args.fp_run),
        "steps_per_iteration": args.steps_per_iteration,
        "final_steps": final_steps,
        "iterations": rows,
        "final": {"params": counts.params, "macs": counts.macs, "val": val, "test": test_metrics},
        "fp_final_val": fp_final.get("metrics"),
        "fp_final_macs": fp_final.get("macs"),
        "wall_s": round(time.time() - started),
        "widths": {n: m.out_channels for n, m in net.named_modules() if isinstance(m, nn.Conv2d)},
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("final", "wall_s")}))


if __name__ == "__main__":
    main()
