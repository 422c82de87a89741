"""``filterprune eval``: metrics, parameters, MACs, size (and latency) of a saved model."""

from __future__ import annotations

import argparse
import json

from ..recipes import evaluate_saved
from ._common import CLIError, add_model_args, add_widths_args, existing_path, model_info
from ._data import add_data_args, load_data

NAME = "eval"
HELP = "evaluate a saved or pruned model on built-in or folder data"
DESCRIPTION = (
    "Rebuild a saved model (original architecture + plan.json + weights.safetensors; a run "
    "folder gives its final model) and print the task metrics on the validation data, with "
    "parameters, MACs (for one input), checkpoint size and optionally latency."
)
EXAMPLES = [
    "filterprune eval --load runs/vgg-pruned",
    "filterprune eval --load runs/vgg-pruned/iter_002 --latency --json",
    "filterprune eval --load model.safetensors --model unet --model-arg base=16 --task segment "
    "--data ./carvana",
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--load",
        type=existing_path,
        required=True,
        metavar="MODEL",
        help="checkpoint folder, run folder or .safetensors file",
    )
    add_model_args(parser)
    add_widths_args(parser)
    add_data_args(parser, required=False)
    parser.add_argument("--latency", action="store_true", help="also time a forward pass")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, ...")
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of the data split (default: model.json's, or 0)",
    )


def run(args: argparse.Namespace) -> int:
    from .. import report

    info = model_info(args, args.load)
    task_name = args.task or info.get("task")
    if task_name is None:
        raise CLIError("--task is required (classify or segment); no model.json names it")
    data = load_data(args, task_name, seed=args.seed, saved=info.get("data"))
    out = evaluate_saved(
        args.load,
        data=data,
        model=info["model"],
        model_args=info["model_args"],
        task=task_name,
        channel_txt=args.channel_txt,
        spec=args.spec,
        latency=args.latency,
        device=args.device,
    )
    if args.json:
        print(json.dumps(out))
        return 0
    table = report.iteration_table([{"iteration": str(args.load), **out}])
    keep = {"iteration", "params", "macs", "size_mb", "latency_ms"}
    keep |= {k for k in table.keys if k.startswith("metric:")}
    table.columns = [
        c for c in table.columns if c.key in keep and (c.key != "latency_ms" or args.latency)
    ]
    table.columns[0] = report.Column("iteration", "Model", "text")
    table.title, table.notes = "Evaluation", []
    print(report.to_markdown(table))
    return 0
