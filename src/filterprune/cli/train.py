"""``filterprune train``: train a baseline model on built-in or folder data and save it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..loop import save, seed_everything
from ..loop.checkpoint import atomic_write_json
from ..loop.tasks import EpochLoader
from ..parallel import is_distributed, rewrap_ddp
from ._common import add_model_args, model_factory, say, write_model_json
from ._data import add_data_args, default_model_args, load_data
from ._distributed import join_torchrun

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
    "filterprune train --task classify --model mypkg.nets:build --data ./images --image-size 64 "
    "--out runs/mine",
]


def add_training_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("optimizer")
    group.add_argument("--lr", type=float, default=0.01, help="learning rate (default 0.01)")
    group.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd", help="default sgd")
    group.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default 0.9)")
    group.add_argument("--weight-decay", type=float, default=0.0, help="default 0")


def add_run_args(parser: argparse.ArgumentParser, group: Any = None) -> None:
    group = group or parser.add_argument_group("run")
    group.add_argument("--device", default=None, help="cpu (default), cuda, cuda:1, ...")
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


def run(args: argparse.Namespace) -> int:
    main_process = join_torchrun(args)  # under torchrun: DDP on every rank's shard, rank 0 saves
    seed = args.seed or 0
    device = args.device or "cpu"
    seed_everything(seed, "train")
    data = load_data(args, args.task, seed=seed)
    kwargs = default_model_args(args.model, args.task, data, dict(args.model_arg))
    model = model_factory(args.model, kwargs)().to(device)
    steps = args.steps if args.steps is not None or args.epochs is not None else 200
    say(args, f"training {args.model} {kwargs} on {len(data.train)} samples")
    done = data.task.finetune(
        rewrap_ddp(model) if is_distributed() else model,  # DDP averages the ranks' gradients
        EpochLoader(data.train_loader),  # a DistributedSampler reshuffles every epoch
        steps=steps,
        epochs=args.epochs,
        lr=args.lr,
        optimizer=args.optimizer,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        device=device,
        progress=not args.quiet,
    )
    if not main_process:  # rank 0 evaluates and saves its replica
        return 0
    metrics = data.task.evaluate(model, data.val_loader, device=device)
    save(model.to("cpu"), None, args.out)
    info = {
        "model": args.model,
        "model_args": kwargs,
        "task": args.task,
        "input_shape": list(data.example.shape),
        "data": data.settings,
    }
    write_model_json(args.out, info)
    atomic_write_json(args.out / "metrics.json", {"steps": done, "metrics": metrics})
    shown = " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
    print(f"{shown} after {done} steps; saved to {args.out}")
    return 0
