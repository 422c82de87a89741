"""``filterprune demo``: train a baseline on built-in data, prune it with Taylor, report."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..recipes import DemoConfig, run_demo
from ..recipes.demo import SIZES

NAME = "demo"
HELP = "train a baseline on built-in data, prune it with Taylor, print the tables"
DESCRIPTION = (
    "A self-contained run on built-in data, nothing downloaded: a U-Net on synthetic cars "
    "(segment, the default) or a VGG16-BN on handwritten digits (classify) is trained (once; the "
    "baseline is cached), pruned with the Taylor criterion over several iterations with "
    "finetuning in between, and the per-iteration and per-layer tables are printed. "
    "Checkpoints, tables, plots and a summary page go to --run-dir. On 2 idle CPU cores, "
    "baseline training included, the demo takes about 100 s and --quick about 30 s (measured: "
    "benchmarks/results/demo_full_segment.json, demo_quick_segment.json); a machine busy with "
    "other work stretches both, and a cached baseline shortens them."
)
EXAMPLES = [
    "filterprune demo",
    "filterprune demo --quick",
    "filterprune demo --task classify --run-dir runs/demo-digits",
    "filterprune report runs/demo-segment",
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--task",
        choices=("segment", "classify"),
        default="segment",
        help="segment (U-Net on synthetic cars, default) or classify (VGG16-BN on digits)",
    )
    parser.add_argument("--quick", action="store_true", help="smaller model, data and budget")
    parser.add_argument("--size", choices=SIZES, default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--run-dir",
        type=Path,
        default=None,
        help="output folder (default: runs/demo-TASK, e.g. runs/demo-segment)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(".cache/filterprune"),
        help="where the trained baseline is cached (default: .cache/filterprune)",
    )
    parser.add_argument("--seed", type=int, default=0, help="RNG seed (default 0)")


def run(args: argparse.Namespace) -> int:
    size = args.size or ("quick" if args.quick else "full")
    config = DemoConfig(
        task=args.task,
        size=size,
        run_dir=args.run_dir,
        cache_dir=args.cache_dir,
        seed=args.seed,
        progress=not args.quiet,
    )
    run_demo(config)
    return 0
