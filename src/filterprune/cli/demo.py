"""``filterprune demo``: train a tiny model on built-in data, prune it, print the tables."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset

from ..criteria import list_criteria
from ..loop import PruneConfig, run_pruning, seed_everything, task_callbacks
from ..models import create_model
from ..tasks import builtin_data, get_task
from ._common import say

NAME = "demo"
HELP = "train a tiny model on built-in data, prune it, print the tables (nothing downloaded)"
DESCRIPTION = (
    "A self-contained run on built-in data: a small U-Net on synthetic cars (segment) or a "
    "small VGG16-BN on handwritten digits (classify) is trained briefly, pruned with the Taylor "
    "criterion for two iterations (one with --quick) with finetuning in between, and the "
    "per-iteration and per-layer tables are printed. Checkpoints go to --run-dir (a temporary "
    "folder by default)."
)
EXAMPLES = [
    "filterprune demo --quick",
    "filterprune demo --task classify",
    "filterprune demo --task segment --run-dir runs/demo && filterprune report runs/demo",
]

# (model, model kwargs, data kwargs, train samples, baseline steps, iterations, finetune steps)
PRESETS = {
    ("segment", True): (
        "unet",
        {"base": 4},
        {"image_size": 32, "num_cars": 16, "views_per_car": 4},
        48,
        30,
        1,
        10,
    ),
    ("segment", False): (
        "unet",
        {"base": 8},
        {"image_size": 48, "num_cars": 32, "views_per_car": 6},
        160,
        120,
        2,
        30,
    ),
    ("classify", True): (
        "vgg16_bn",
        {"width": 1 / 16, "head": "cifar", "num_classes": 10},
        {"image_size": 32},
        256,
        40,
        1,
        10,
    ),
    ("classify", False): (
        "vgg16_bn",
        {"width": 1 / 8, "head": "cifar", "num_classes": 10},
        {"image_size": 32},
        1024,
        150,
        2,
        40,
    ),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--task",
        choices=("segment", "classify"),
        default="segment",
        help="segment (U-Net, default) or classify (VGG16-BN)",
    )
    parser.add_argument("--quick", action="store_true", help="smaller model, data and budget")
    parser.add_argument("--run-dir", type=Path, default=None, help="default: a temporary folder")
    parser.add_argument("--seed", type=int, default=0, help="RNG seed (default 0)")


def run(args: argparse.Namespace) -> int:
    from .. import report

    name, model_kwargs, data_kwargs, n_train, steps, iterations, finetune = PRESETS[
        (args.task, args.quick)
    ]
    run_dir = args.run_dir or Path(tempfile.mkdtemp(prefix="filterprune-demo-"))
    task = get_task(args.task)
    train, val = builtin_data(args.task, seed=args.seed, **data_kwargs)
    train = Subset(train, range(min(n_train, len(train))))
    val = Subset(val, range(min(max(32, n_train // 4), len(val))))
    generator = torch.Generator().manual_seed(args.seed)
    train_loader = DataLoader(train, batch_size=16, shuffle=True, generator=generator)
    val_loader = DataLoader(val, batch_size=64)
    seed_everything(args.seed, "demo")
    model = create_model(name, **model_kwargs)
    say(args, f"training {name} {model_kwargs} for {steps} steps on {len(train)} samples")
    task.finetune(
        model, train_loader, steps=steps, lr=3e-3, optimizer="adam", progress=not args.quiet
    )
    hooks = task_callbacks(
        task, train_loader, val_loader, lr=1e-3, optimizer="adam", progress=not args.quiet
    )
    config = PruneConfig(
        criterion="taylor" if "taylor" in list_criteria() else "l1",
        amount=0.2,
        scope="global",
        ranking_batches=2,
        finetune=finetune,
        max_iterations=iterations,
        seed=args.seed,
    )
    say(args, f"pruning with {config.criterion}, {iterations} iteration(s); run folder {run_dir}")
    result = run_pruning(
        model,
        val[0][0].unsqueeze(0),
        config=config,
        run_dir=run_dir,
        progress=not args.quiet,
        **hooks.as_kwargs(),
    )
    print(report.to_markdown(result.table()))
    print()
    print(report.to_markdown(result.layer_table()))
    print(
        f"\nstopped: {result.stop_message}. Checkpoints: {run_dir} "
        f"(tables and plots: filterprune report {run_dir})"
    )
    return 0
