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
