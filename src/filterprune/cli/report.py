"""``filterprune report``: tables, plots and a summary page for a pruning run."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..loop import write_run_report
from ._common import CLIError, say

NAME = "report"
HELP = "write tables, plots and summary.md/html for a run folder"
DESCRIPTION = (
    "Read a run folder written by 'filterprune prune' (log.jsonl) and write the per-iteration "
    "and per-layer tables (Markdown, CSV, JSON), plots (channels per layer, each metric and "
    "latency against MACs) and summary.md / summary.html into RUN_DIR/report (or --out). The "
    "tables are printed too."
)
EXAMPLES = [
    "filterprune report runs/vgg-pruned",
    "filterprune report runs/vgg-pruned --format csv --no-plots",
    "filterprune report runs/unet-pruned --out docs/unet-report",
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a prune run folder")
    parser.add_argument("--out", type=Path, default=None, help="default RUN_DIR/report")
    parser.add_argument(
        "--format",
        choices=("markdown", "csv", "json"),
        default="markdown",
        help="format of the printed tables (all three are written)",
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the figures")


def run(args: argparse.Namespace) -> int:
    from .. import report as rep

    if not args.run_dir.is_dir():
        raise CLIError(f"RUN_DIR {str(args.run_dir)!r} is not a folder; pass a prune --run-dir")
    result = write_run_report(args.run_dir, out_dir=args.out, plots=not args.no_plots)
    render = {"markdown": rep.to_markdown, "csv": rep.to_csv, "json": rep.to_json}[args.format]
    for table in (result.iterations, result.layers):
        if table is not None:
            print(render(table))
    out = args.out or args.run_dir / "report"
    say(args, f"wrote {len(result.files)} files to {out}")
    return 0
