"""Tiny MNIST-format (IDX) files for tests, written independently of filterprune's reader."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import torch

TYPE_CODES = {torch.uint8: 0x08, torch.int16: 0x0B, torch.int32: 0x0C, torch.float32: 0x0D}


def idx_bytes(tensor: torch.Tensor) -> bytes:
    """IDX encoding, written independently of the reader: struct for the header, big-endian data."""
    header = struct.pack(">HBB", 0, TYPE_CODES[tensor.dtype], tensor.ndim)
    header += struct.pack(f">{tensor.ndim}I", *tensor.shape)
    fmt = {torch.uint8: "B", torch.int16: "h", torch.int32: "i", torch.float32: "f"}[tensor.dtype]
    return header + struct.pack(f">{tensor.numel()}{fmt}", *tensor.flatten().tolist())


def write_set(folder: Path, n_train: int = 40, n_test: int = 10, *, gz: bool = True) -> Path:
    """An MNIST-like set: 6x5 images whose class (0..3) is the row holding the bright pixels."""
    folder.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(0)
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = torch.arange(n, dtype=torch.uint8) % 4
        images = torch.randint(0, 40, (n, 6, 5), generator=gen, dtype=torch.uint8)
        images[torch.arange(n), labels.long()] = 255
        for kind, tensor, dims in (("images", images, 3), ("labels", labels, 1)):
            name = f"{split}-{kind}-idx{dims}-ubyte"
            data = idx_bytes(tensor)
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (folder / name).write_bytes(data)
    return folder


def write_items(
    folder: Path, n_train: int = 30, n_test: int = 10, *, disjoint: bool = True
) -> Path:
    """Item images of solid blocks; train labels are the image's own index (0..n_train-1), test
    labels are n_train.. (so a canvas's labels tell which file, and which image, each item is
    from); ``disjoint=False``: test labels 0..n_test-1, classes the training file also has."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, n, first in (("train", n_train, 0), ("t10k", n_test, n_train if disjoint else 0)):
        images = torch.zeros(n, 28, 28, dtype=torch.uint8)
        for i in range(n):
            images[i, 3 : 3 + 10 + i % 14, 4 : 4 + 8 + (5 * i) % 16] = 255
        labels = torch.arange(first, first + n, dtype=torch.uint8)
        (folder / f"{split}-images-idx3-ubyte").write_bytes(idx_bytes(images))
        (folder / f"{split}-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
    return folder
