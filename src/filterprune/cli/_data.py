"""Datasets and loaders for the subcommands: built-in data or a folder, for a registered task.

Folder layouts (``--data DIR``):

* classify: ``DIR/train/CLASS/*.png`` and ``DIR/val/CLASS/*.png``, or ``DIR/CLASS/*.png`` split
  randomly (``--val-fraction``).
* segment: Carvana, ``DIR/train/ID.jpg`` with ``DIR/train_masks/ID_mask.gif`` (or ``images/`` with
  ``masks/``), split by car so no car is on both sides.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from ._common import CLIError, key_value

DEFAULT_IMAGE_SIZE = {"classify": 32, "segment": 64}


def add_data_args(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    group = parser.add_argument_group("data")
    group.add_argument(
        "--task",
        choices=("classify", "segment"),
        default=None,
        required=required,
        help="the task: loss, metrics and data layout (read from model.json if omitted)",
    )
    group.add_argument(
        "--data",
        default="builtin",
        metavar="DIR|builtin",
        help="'builtin' (digits for classify, synthetic cars for segment; nothing is downloaded)"
        " or a folder (see 'filterprune prune --help')",
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
        type=float,
        default=0.2,
        metavar="F",
        help="validation share when a folder has no split (default 0.2)",
    )
    group.add_argument("--batch-size", type=int, default=16, metavar="N", help="default 16")
    group.add_argument(
        "--limit",
        type=int,
        default=None,
        metavar="N",
        help="use at most N training and N validation samples (quick checks)",
    )
    group.add_argument(
        "--data-arg",
        action="append",
        type=key_value,
        default=[],
        metavar="KEY=VALUE",
        help="option of the built-in data, e.g. num_cars=16 (repeatable)",
    )


@dataclass
class Data:
    task: Any
    train: Dataset
    val: Dataset
    train_loader: DataLoader
    val_loader: DataLoader

    @property
    def example(self) -> torch.Tensor:
        """One validation input with a batch dimension, for tracing and counting."""
        return self.val[0][0].unsqueeze(0)


def _folder(task_name: str, root: Path, size: int, val_fraction: float, seed: int):
    from ..tasks import CarvanaDataset, ImageFolderDataset, split_by_object_id

    if not root.is_dir():
        raise CLIError(f"--data {root}: folder does not exist; pass a folder or 'builtin'")
    if task_name == "classify":
        if (root / "train").is_dir() and (root / "val").is_dir():
            return (
                ImageFolderDataset(root / "train", image_size=size),
                ImageFolderDataset(root / "val", image_size=size),
            )
        full = ImageFolderDataset(root, image_size=size)
        order = torch.randperm(len(full), generator=torch.Generator().manual_seed(seed)).tolist()
        n_val = max(1, round(len(full) * val_fraction))
        return Subset(full, sorted(order[n_val:])), Subset(full, sorted(order[:n_val]))
    for images, masks in (("train", "train_masks"), ("images", "masks")):
        if (root / images).is_dir() and (root / masks).is_dir():
            full = CarvanaDataset(root / images, root / masks, image_size=size)
            train_idx, val_idx = split_by_object_id(full.ids, val_fraction, seed)
            return Subset(full, train_idx), Subset(full, val_idx)
    raise CLIError(
        f"--data {root}: expected Carvana folders {root}/train + {root}/train_masks "
        f"(or images + masks) for the segment task"
    )


def load_data(args: argparse.Namespace, task_name: str, *, seed: int) -> Data:
    """Datasets and loaders for ``task_name`` as the data flags ask."""
    from ..tasks import builtin_data, get_task

    task = get_task(task_name)
    size = args.image_size or DEFAULT_IMAGE_SIZE[task_name]
    if args.data == "builtin":
        options = {"image_size": size, **dict(args.data_arg)}
        try:
            train, val = builtin_data(task_name, seed=seed, **options)
        except TypeError as exc:
            raise CLIError(f"--data-arg {dict(args.data_arg)}: {exc}") from None
    else:
        if args.data_arg:
            raise CLIError("--data-arg only applies to --data builtin")
        train, val = _folder(task_name, Path(args.data), size, args.val_fraction, seed)
    if args.limit is not None:
        if args.limit < 1:
            raise CLIError(f"--limit must be >= 1, got {args.limit}")
        train = Subset(train, range(min(args.limit, len(train))))
        val = Subset(val, range(min(args.limit, len(val))))
    if len(train) == 0 or len(val) == 0:
        raise CLIError(f"--data {args.data}: no training or no validation samples")
    if args.batch_size < 1:
        raise CLIError(f"--batch-size must be >= 1, got {args.batch_size}")
    generator = torch.Generator().manual_seed(seed)
    return Data(
        task=task,
        train=train,
        val=val,
        train_loader=DataLoader(
            train, batch_size=args.batch_size, shuffle=True, generator=generator
        ),
        val_loader=DataLoader(val, batch_size=max(args.batch_size, 32)),
    )


def default_model_args(spec: str, task_name: str, data: Data, given: dict[str, Any]) -> dict:
    """Add ``num_classes`` (and ``in_channels``) from the data for built-in models."""
    if ":" in spec:
        return dict(given)
    out = dict(given)
    if task_name == "segment":
        out.setdefault("num_classes", 1)
    else:
        base = data.train
        while isinstance(base, Subset):
            base = base.dataset
        tensors = getattr(base, "tensors", None)
        classes = getattr(base, "classes", None)
        if tensors is not None and len(tensors) > 1:
            out.setdefault("num_classes", int(tensors[1].max()) + 1)
        elif classes is not None:
            out.setdefault("num_classes", len(classes))
    return out
