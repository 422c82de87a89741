"""Reading images and masks from disk with Pillow (the ``data`` extra)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from filterprune.tasks._deps import require

from ..errors import ConfigError, UnreadableFileError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

Size = int | tuple[int, int]


def as_hw(size: Size, *, option: str) -> tuple[int, int]:
    """Turn ``size`` (an int for square, or ``(height, width)``) into ``(height, width)``."""
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size)
    if (
        not isinstance(size, tuple)
        or len(size) != 2
        or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size)
    ):
        raise ConfigError(
            f"{option} must be a positive int or a (height, width) tuple of positive ints, "
            f"got {size!r}; use e.g. {option}=64."
        )
    return size


def _unreadable(path: Path, owner: str, err: BaseException) -> UnreadableFileError:
    """The error for an image file Pillow cannot (or will not) read; names the file."""
    image_mod = require("PIL.Image", feature=owner)
    bomb = (image_mod.DecompressionBombError, image_mod.DecompressionBombWarning)
    if isinstance(err, (*bomb, MemoryError)):
        limit = image_mod.MAX_IMAGE_PIXELS
        why = f" ({err})" if isinstance(err, bomb) else ""
        return UnreadableFileError(
            f"{owner}: image file {str(path)!r} is too large to read{why}; images above "
            f"{limit or 0:,} pixels are refused as possible decompression bombs: shrink it "
            "to the size you train at, or delete it."
        )
    reason = " ".join(str(err).split()) or "no reason given"
    return UnreadableFileError(
        f"{owner}: cannot read image file {str(path)!r} ({type(err).__name__}: {reason}). "
        "Replace it with a valid PNG/JPEG/GIF or delete it."
    )


@contextmanager
def _reading(path: Path, owner: str) -> Iterator[Any]:
    """Pillow's ``Image`` module; any error while reading ``path`` names the file, and a
    decompression-bomb warning (an image just above Pillow's pixel limit) is an error too."""
    image_mod = require("PIL.Image", feature=owner)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", image_mod.DecompressionBombWarning)
            yield image_mod
    except UnreadableFileError:
        raise
    except Exception as err:  # noqa: BLE001 - Pillow raises many kinds for a bad file
        raise _unreadable(path, owner, err) from err


def _open(path: Path, *, mode: str, owner: str):
    with _reading(path, owner) as image_mod, image_mod.open(path) as image:
        image.load()
        return image.convert(mode)


def load_rgb(path: Path, *, size_hw: tuple[int, int] | None, owner: str) -> torch.Tensor:
    """Read an image as float32 ``(3, H, W)`` in [0, 1], resized (bilinear) to ``size_hw`` if given."""
    np = require("numpy", feature=owner)
    image = _open(path, mode="RGB", owner=owner)
    if size_hw is not None and image.size != (size_hw[1], size_hw[0]):
        image = image.resize((size_hw[1], size_hw[0]), resample=2)  # 2 = bilinear
    array = np.asarray(image, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)


def load_mask(path: Path, *, size_hw: tuple[int, int] | None, owner: str) -> torch.Tensor:
    """Read a binary mask as float32 ``(1, H, W)`` in {0, 1}, resized (nearest) to ``size_hw``.

    Masks stored as 0/1 and as 0/255 are both understood: with a maximum of 1 every non-zero pixel
    is foreground, otherwise pixels >= 128 are.
    """
    np = require("numpy", feature=owner)
    image = _open(path, mode="L", owner=owner)
    if size_hw is not None and image.size != (size_hw[1], size_hw[0]):
        image = image.resize((size_hw[1], size_hw[0]), resample=0)  # 0 = nearest
    array = np.asarray(image, dtype=np.uint8)
    threshold = 1 if array.max(initial=0) <= 1 else 128
    return torch.from_numpy((array >= threshold).astype(np.float32)).unsqueeze(0)


def image_size_of(path: Path, *, owner: str) -> tuple[int, int]:
    """``(height, width)`` of an image file without decoding its pixels."""
    with _reading(path, owner) as image_mod, image_mod.open(path) as image:
        width, height = image.size
    return height, width
