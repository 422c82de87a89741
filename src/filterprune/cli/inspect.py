"""``filterprune inspect``: what can be pruned in a model, and why not."""

from __future__ import annotations

import argparse

import torch

from .._memory import doing
from ..api import analyze
from ..recipes import load_model, model_factory, widths_plan
from ..surgery import apply_plan
from ._args import add_model_args, add_widths_args, existing_path, model_info, shape, trust

NAME = "inspect"
HELP = "print the prunability report (channel groups, frozen reasons) of a model"
DESCRIPTION = (
    "Trace a built-in or imported model on a zero input of --input-shape and print its channel "
    "groups: which layers shrink together and, for frozen groups, why they cannot be pruned. "
    "With --load, the saved (pruned) model is inspected."
)
EXAMPLES = [
    "filterprune inspect --model resnet18 --model-arg stem=cifar --input-shape 1,3,32,32",
    "filterprune inspect --model unet --model-arg base=16 --input-shape 1,3,64,64",
    "filterprune inspect --model mypkg.nets:build --trust-model-code --ignore 'head.*'",
    "filterprune inspect --load runs/vgg-pruned",
    "filterprune inspect --list-models",
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_args(parser)
    parser.add_argument(
        "--input-shape",
        type=shape,
        default=None,
        metavar="N,C,H,W",
        help="shape of the example input (default 1,3,32,32 or model.json's)",
    )
    parser.add_argument(
        "--load", type=existing_path, metavar="MODEL", help="inspect a saved model instead"
    )
    parser.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="PATTERN",
        help="keep the output channels of layers matching this pattern (repeatable)",
    )
    parser.add_argument(
        "--grouped",
        choices=("within", "whole"),
        default="within",
        help="grouped convs lose channels inside every group (within, default) or whole groups",
    )
    parser.add_argument(
        "--list-models",
        action="store_true",
        help="list the built-in models with their arguments (name=default, meaning)",
    )
    add_widths_args(parser)


def _arguments(name: str) -> str:
    """One line per keyword argument of a built-in model: name=default and its meaning."""
    from ..models import model_arguments

    lines = []
    for arg in model_arguments(name):
        meaning = arg.meaning.replace("``", "").replace(":data:", "")
        lines.append(f"  {arg.name}={arg.default!r}".ljust(26) + f" {meaning}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ..models import list_models

    if args.list_models:
        for name in list_models():
            print(f"{name}\n{_arguments(name)}")
        return 0
    info = model_info(args, args.load)
    if args.load is None and info["model"] in list_models():
        print(f"{info['model']} takes (--model-arg NAME=VALUE):\n{_arguments(info['model'])}\n")
    factory = model_factory(info["model"], info["model_args"], trust_code=trust(args))
    input_shape = args.input_shape or tuple(info.get("input_shape", (1, 3, 32, 32)))
    what = f"inspecting {info['model']} on an input of shape {tuple(input_shape)}"
    fix = "pass a smaller --input-shape (batch, channels, height, width)"
    with doing(what, fix):
        example = torch.zeros(input_shape)
    widths = {"channel_txt": args.channel_txt, "spec": args.spec}
    if args.load is not None:
        with doing(what, fix):
            model, _ = load_model(args.load, factory, example, **widths)
    else:  # the architecture, narrowed to --channel-txt / --spec widths if given
        model = factory()
        plan = widths_plan(factory, example, **widths)
        if plan is not None:
            apply_plan(model, plan)
    with doing(what, fix):
        graph = analyze(model.eval(), example, ignore=args.ignore or None, grouped=args.grouped)
    print(graph.report())
    from ..measure import count

    with doing(what, fix):
        counts = count(model, example)
    print(f"{counts.params} parameters, {counts.macs} MACs for input {tuple(input_shape)}")
    return 0
