"""Datasets of Fashion-MNIST canvases: binary foreground (``segment``) or boxes and classes (``detect``).

``--data fashion-mnist-seg`` and ``--data fashion-mnist-det`` (or :func:`canvas_datasets` from
Python) draw the canvases of :mod:`filterprune.tasks.canvas` from the MNIST-format files that
``--data fashion-mnist`` finds (Debian's ``dataset-fashion-mnist``, ``$FILTERPRUNE_FASHION_MNIST``)
or from any folder of MNIST-format files.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from ..errors import DataError
from .canvas import Canvas, CanvasConfig, draw_canvas
from .idx import FASHION_MNIST_CLASSES, _load_pair, find_idx_files, resolve_idx_root

__all__ = ["CANVAS_KINDS", "CanvasDataset", "canvas_datasets", "detection_target"]

CANVAS_KINDS = ("segment", "detect")
_SPLITS = {"train": 0, "val": 1, "test": 2}


def detection_target(canvas: Canvas, rows: int) -> torch.Tensor:
    """Boxes and classes of ``canvas`` as one fixed-size tensor that batches without a collate.

    Returns:
        float32 ``(rows, 5)``: ``(class, x1, y1, x2, y2)`` per item, coordinates as shares of the
        canvas side (0..1); rows past the items have class -1 and zero boxes.
    """
    out = torch.zeros(rows, 5)
    out[:, 0] = -1
    count = min(rows, len(canvas.labels))
    out[:count, 0] = canvas.labels[:count].float()
    out[:count, 1:] = canvas.boxes[:count] / canvas.image.shape[-1]
    return out


class CanvasDataset(Dataset):
    """``count`` canvases drawn from a pool of item images, each from its own seed.

    Items are ``(image (C, S, S) in [0, 1], target)``; the target is a float mask ``(1, S, S)``
    for ``kind="segment"`` and :func:`detection_target` ``(max_items, 5)`` for ``"detect"``.

    Args:
        images: uint8 ``(N, h, w)`` item images.
        labels: ``(N,)`` item classes.
        config: How canvases are drawn (its ``seed`` is the set's).
        count: Number of canvases.
        kind: ``"segment"`` or ``"detect"``.
        split: ``"train"``, ``"val"`` or ``"test"``: part of each canvas's seed.
        classes: Class names.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        config: CanvasConfig,
        count: int,
        kind: str,
        split: str,
        classes: tuple[str, ...] = FASHION_MNIST_CLASSES,
    ) -> None:
        if kind not in CANVAS_KINDS:
            raise DataError(f"CanvasDataset.kind: need one of {CANVAS_KINDS}, got {kind!r}")
        if split not in _SPLITS:
            raise DataError(f"CanvasDataset.split: need one of {tuple(_SPLITS)}, got {split!r}")
        if not isinstance(count, int) or count < 1:
            raise DataError(f"CanvasDataset.count: need an int >= 1, got {count!r}")
        self.images, self.labels = images, labels.long()
        self.config, self.count, self.kind, self.split = config, count, kind, split
        self.classes = tuple(classes)

    def __len__(self) -> int:
        return self.count

    def canvas(self, index: int) -> Canvas:
        """Canvas ``index`` with its masks, boxes and classes."""
        if not 0 <= index < self.count:
            raise IndexError(f"canvas {index} of {self.count}")
        seed = (self.config.seed * 3 + _SPLITS[self.split]) * 10_000_019 + index
        return draw_canvas(
            self.images, self.labels, self.config, torch.Generator().manual_seed(seed)
        )

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        canvas = self.canvas(index)
        if self.kind == "segment":
            return canvas.image, canvas.masks.any(0, keepdim=True).float()
        return canvas.image, detection_target(canvas, self.config.max_items)


def canvas_datasets(
    root: str | Path = "fashion-mnist",
    *,
    kind: str,
    config: CanvasConfig | None = None,
    num_train: int = 4000,
    num_val: int = 500,
    num_test: int = 1000,
    val_fraction: float = 0.1,
) -> tuple[CanvasDataset, CanvasDataset, CanvasDataset | None]:
    """Train / validation / test canvases from an MNIST-format folder.

    Training and validation canvases draw their items from disjoint, seeded parts of the training
    file (``val_fraction`` of its images for validation); test canvases draw from the ``t10k`` file
    only, so a loop that selects on validation never sees a test item.

    Args:
        root: ``"fashion-mnist"`` (found as ``--data fashion-mnist`` finds it) or a folder.
        kind: ``"segment"`` (binary foreground masks) or ``"detect"`` (boxes and classes).
        config: How canvases are drawn; ``CanvasConfig()`` by default (64 px, 1-6 items).
        num_train: Training canvases.
        num_val: Validation canvases.
        num_test: Test canvases (none when the folder has no ``t10k`` file).
        val_fraction: Share of the training file's images kept for validation canvases.

    Returns:
        ``(train, val, test)``; ``test`` is ``None`` without a ``t10k`` file.
    """
    config = config or CanvasConfig()
    if not 0 < val_fraction < 1:
        raise DataError(f"canvas_datasets: val_fraction must be in (0, 1), got {val_fraction!r}")
    folder = resolve_idx_root(root)
    files = find_idx_files(folder)
    images, labels = _load_pair(*files["train"])
    n_val = max(1, round(len(labels) * val_fraction))
    if n_val >= len(labels):
        raise DataError(
            f"IDX data folder {str(folder)!r}: {len(labels)} training images leave none for "
            f"training canvases after a {val_fraction} validation share; lower val_fraction"
        )
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(config.seed))
    val_idx, train_idx = order[:n_val], order[n_val:]
    top = int(labels.max()) + 1
    classes = (
        FASHION_MNIST_CLASSES
        if top <= len(FASHION_MNIST_CLASSES)
        else tuple(str(i) for i in range(top))
    )

    def make(pool: tuple[torch.Tensor, torch.Tensor], count: int, split: str) -> CanvasDataset:
        return CanvasDataset(
            *pool, config=config, count=count, kind=kind, split=split, classes=classes
        )

    train = make((images[train_idx], labels[train_idx]), num_train, "train")
    val = make((images[val_idx], labels[val_idx]), num_val, "val")
    test = None
    if "test" in files:
        test_images, test_labels = _load_pair(*files["test"])
        if len(test_labels):
            test = make((test_images, test_labels), num_test, "test")
    return train, val, test
