"""``filterprune report``: tables, plots and a summary page for a pruning run."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..recipes import model_factory
from ..report.run_report import write_run_report
from ._args import CLIError, add_model_args, add_widths_args, model_info, shape, trust
from ._output import say

NAME = "report"
HELP = "write tables, plots and summary.md/html for a run folder"
DESCRIPTION = (
    "Read a run folder written by 'filterprune prune' (log.jsonl) and write the per-iteration, "
    "per-layer and latency tables (Markdown, CSV, JSON), plots (channels per layer, each metric "
    "and latency against MACs, importance score distributions) and summary.md / summary.html "
    "into RUN_DIR/report (or --out). The tables are printed too. --onnx rebuilds the original "
    "and the final model (from model.json, or --model) and checks their deployment: ONNX export "
    "(model.onnx) with onnxruntime parity and CPU latency when onnxruntime is installed, "
    "torch.export and TorchScript."
)
EXAMPLES = [
    "filterprune report runs/vgg-pruned",
    "filterprune report runs/vgg-pruned --format csv --no-plots",
    "filterprune report runs/unet-pruned --out docs/unet-report",
    "filterprune report runs/vgg-pruned --onnx --onnx-threads 1",
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
    deploy = parser.add_argument_group("deployment checks")
    deploy.add_argument(
        "--onnx",
        "--deploy",
        dest="deploy",
        action="store_true",
        help="export the original and final model to ONNX (model.onnx), compare with PyTorch "
        "and time them with onnxruntime; check torch.export and TorchScript",
    )
    deploy.add_argument(
        "--onnx-threads", type=int, metavar="N", help="onnxruntime threads (default: torch's)"
    )
    deploy.add_argument(
        "--input-shape",
        type=shape,
        default=None,
        metavar="N,C,H,W",
        help="input of the exported graphs (default: model.json's, else the model's own size)",
    )
    add_model_args(parser)
    add_widths_args(parser)


def _deploy_inputs(args: argparse.Namespace) -> dict:
    import torch

    from ..models import input_shape as built_for

    info = model_info(args, args.run_dir)
    factory = model_factory(info["model"], info["model_args"], trust_code=trust(args))
    # the input the run used, else the one the model is built for (224x224 for ImageNet heads)
    input_shape = args.input_shape or info.get("input_shape") or built_for(factory())
    if input_shape is None:
        raise CLIError(
            f"--onnx needs the input shape: {args.run_dir} has no model.json with input_shape "
            f"and {info['model']} does not say its input size; pass --input-shape N,C,H,W"
        )
    if args.onnx_threads is not None and args.onnx_threads < 1:
        raise CLIError(f"--onnx-threads must be >= 1, got {args.onnx_threads}")
    example = torch.randn(*input_shape, generator=torch.Generator().manual_seed(0))
    return {
        "model_factory": factory,
        "example_inputs": example,
        "onnx_threads": args.onnx_threads,
    }


def run(args: argparse.Namespace) -> int:
    from ..store.files import refuse_symlink

    refuse_symlink(args.out or args.run_dir / "report", option="--out")
    from .. import report as rep

    if not args.run_dir.is_dir():
        raise CLIError(f"RUN_DIR {str(args.run_dir)!r} is not a folder; pass a prune --run-dir")
    if args.channel_txt or args.spec:  # every checkpoint of a run has its plan.json
        say(args, "--channel-txt/--spec not needed: the run's plan.json files hold its widths")
    extra = _deploy_inputs(args) if args.deploy else {}
    result = write_run_report(
        args.run_dir, out_dir=args.out, plots=not args.no_plots, deploy=args.deploy, **extra
    )
    render = {"markdown": rep.to_markdown, "csv": rep.to_csv, "json": rep.to_json}[args.format]
    for table in result.tables().values():
        print(render(table))
    out = args.out or args.run_dir / "report"
    say(args, f"wrote {len(result.files)} files to {out}")
    return 0
