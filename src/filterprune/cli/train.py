"""``filterprune train``: train a baseline model on built-in or folder data and save it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..parallel import is_main_process
from ..recipes import Optimizer, train_baseline
from ..recipes.models import model_factory
from ..recipes.train import OPTIMIZERS, SCHEDULES, check_out
from ._args import add_model_args, device, real, trust
from ._data import add_data_args, load_data
from ._distributed import join_torchrun
from ._output import say

NAME = "train"
HELP = "train a baseline model and save it (safetensors + model.json)"
DESCRIPTION = (
    "Train a model from scratch with the task's loss on built-in or folder data, evaluate it and "
    "save weights.safetensors, plan.json, model.json and metrics.json into --out. The folder can "
    "then be passed to 'filterprune prune --load'."
)
EXAMPLES = [
    "filterprune train --task classify --model vgg16_bn --model-arg width=0.25 "
    "--model-arg head=cifar --steps 300 --out runs/vgg-base",
    "filterprune train --task segment --model unet --model-arg base=16 --data-arg num_cars=32 "
    "--epochs 3 --optimizer adam --lr 0.002 --out runs/unet-base",
    "filterprune train --task classify --model mypkg.nets:build --trust-model-code --data ./images "
    "--image-size 64 --out runs/mine",
]


def add_training_args(parser: argparse.ArgumentParser, *, inherit: bool = False) -> None:
    """Optimizer flags; with ``inherit`` (prune) unset flags take the baseline's settings."""
    base = Optimizer()
    note = (
        "unset flags: the optimizer the baseline was trained with (model.json, else the "
        "defaults) at a tenth of its learning rate, kept constant"
    )
    group = parser.add_argument_group("optimizer", note if inherit else None)

    def default(value: Any) -> Any:
        return None if inherit else value

    lr_help = (
        "finetuning learning rate (default: a tenth of the baseline's)"
        if inherit
        else f"learning rate (default {base.lr})"
    )
    group.add_argument(
        "--lr", type=real(0.0, low_open=True), default=default(base.lr), help=lr_help
    )
    if not inherit:  # prune's finetuning phases are short and keep their rate
        group.add_argument(
            "--schedule",
            choices=SCHEDULES,
            default=base.schedule,
            help=f"learning-rate schedule over the budget (default {base.schedule}: decays to 0)",
        )
    group.add_argument(
        "--optimizer", choices=OPTIMIZERS, default=default(base.name), help="default sgd"
    )
    group.add_argument(
        "--momentum",
        type=real(0.0, 1.0, high_open=True),
        default=default(base.momentum),
        help=f"SGD momentum (default {base.momentum})",
    )
    group.add_argument(
        "--weight-decay",
        type=real(0.0, 1.0),
        default=default(base.weight_decay),
        help=f"default {base.weight_decay:g}",
    )


def add_run_args(parser: argparse.ArgumentParser, group: Any = None) -> None:
    group = group or parser.add_argument_group("run")
    group.add_argument(
        "--device", type=device, default=None, help="cpu (default), cuda, cuda:1, ..."
    )
    group.add_argument("--seed", type=int, default=None, help="RNG seed (default 0)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_args(parser, required=True)
    add_data_args(parser, required=True)
    budget = parser.add_argument_group("training").add_mutually_exclusive_group()
    budget.add_argument(
        "--steps", type=int, default=None, metavar="N", help="optimizer steps (default 200)"
    )
    budget.add_argument(
        "--epochs", type=int, default=None, metavar="N", help="passes over the training data"
    )
    add_training_args(parser)
    add_run_args(parser)
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("runs/baseline"),
        help="output folder (default runs/baseline)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace --out if it holds a baseline filterprune wrote (never other folders)",
    )


def run(args: argparse.Namespace) -> int:
    check_out(args.out, overwrite=args.overwrite)  # before anything is loaded or trained
    join_torchrun(args)  # under torchrun: DDP on every rank's shard, rank 0 saves
    seed = args.seed or 0
    # a mistyped --model fails here, before the data loads and before "training ..." is said
    model_factory(args.model, dict(args.model_arg), trust_code=trust(args))
    data = load_data(args, args.task, seed=seed)
    say(args, f"training {args.model} {dict(args.model_arg)} on {len(data.train)} samples")
    done = train_baseline(
        args.model,
        data,
        out=args.out,
        model_args=dict(args.model_arg),
        steps=args.steps,
        epochs=args.epochs,
        optimizer=Optimizer(
            name=args.optimizer,
            lr=args.lr,
            momentum=args.momentum,
            weight_decay=args.weight_decay,
            schedule=args.schedule,
        ),
        seed=seed,
        device=args.device or "cpu",
        progress=not args.quiet,
        overwrite=args.overwrite,
        trust_code=trust(args),
    )
    if not is_main_process():
        return 0
    shown = " ".join(f"{k}={v:.4g}" for k, v in done.metrics.items())
    print(f"{shown} after {done.steps} steps; saved to {args.out}")
    return 0
