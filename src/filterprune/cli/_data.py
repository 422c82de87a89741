"""The data flags of train, prune and eval; the datasets come from :mod:`filterprune.recipes.data`."""

from __future__ import annotations

import argparse
from typing import Any

from ..recipes import data as _recipe
from ..recipes.data import Data, default_model_args
from ._args import key_value, real

__all__ = ["Data", "add_data_args", "data_options", "default_model_args", "load_data"]


def add_data_args(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    note = (
        None if required else "unset options default to the settings in model.json next to --load"
    )
    group = parser.add_argument_group("data", note)
    group.add_argument(
        "--task",
        choices=("classify", "segment", "detect"),
        default=None,
        required=required,
        help="the task: loss, metrics and data layout",
    )
    group.add_argument(
        "--data",
        default=None,
        metavar="DIR|builtin",
        help="'builtin' (digits for classify, synthetic cars for segment; nothing is "
        "downloaded; the default), 'fashion-mnist' (installed by 'apt-get install "
        "dataset-fashion-mnist'), 'fashion-mnist-seg' / 'fashion-mnist-det' (canvases of "
        "Fashion-MNIST items with masks / boxes, for --task segment / detect), or a folder: "
        "MNIST-format IDX files or images "
        "(see 'filterprune prune --help')",
    )
    group.add_argument(
        "--image-size",
        type=int,
        default=None,
        metavar="PX",
        help="resize images to PX x PX (default 32 classify, 64 segment)",
    )
    group.add_argument(
        "--val-fraction",
        type=real(0.0, 1.0, low_open=True, high_open=True),
        default=None,
        metavar="F",
        help="validation share when the data has no split (default 0.2)",
    )
    group.add_argument(
        "--data-arg",
        action="append",
        type=key_value,
        default=None,
        metavar="KEY=VALUE",
        help="option of the built-in or MNIST-format data, e.g. num_cars=16, channels=3 "
        "(1 -> 3 channels for RGB models), resize=bilinear (instead of padding to "
        "--image-size); of the canvases: train_canvases=4000, val_canvases=500, "
        "test_canvases=1000, max_items=6, root=DIR (repeatable)",
    )
    group.add_argument(
        "--resize-masks",
        action="store_true",
        help="segment folders: resize a mask whose size differs from its image (default: error)",
    )
    group.add_argument("--batch-size", type=int, default=16, metavar="N", help="default 16")
    group.add_argument(
        "--limit",
        type=int,
        default=None,
        metavar="N",
        help="use at most N training and N validation samples (quick checks)",
    )


def data_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of :func:`filterprune.recipes.load_data` that the flags set."""
    return {
        "data": args.data,
        "image_size": args.image_size,
        "val_fraction": args.val_fraction,
        "data_args": dict(args.data_arg) if args.data_arg else None,
        "batch_size": args.batch_size,
        "limit": args.limit,
        "resize_masks": bool(getattr(args, "resize_masks", False)),
    }


def load_data(
    args: argparse.Namespace,
    task_name: str,
    *,
    seed: int | None,
    saved: dict[str, Any] | None = None,
) -> Data:
    """The datasets and loaders the data flags ask for (unset flags: ``saved``, then defaults)."""
    split = getattr(args, "split", "val")  # eval --split test
    return _recipe.load_data(task_name, seed=seed, saved=saved, split=split, **data_options(args))
