"""On-disk size of a model's weights, measured by writing a safetensors checkpoint.

Sizes are reported in bytes; :func:`bytes_to_mb` converts to MB (10**6 bytes), the unit of the
report tables.
"""

from __future__ import annotations

import os
import tempfile

import torch
from torch import nn

from ..errors import MissingDependencyError, StorageError

__all__ = ["bytes_to_mb", "checkpoint_size_bytes", "savable_state_dict"]

_EXTRA_HINT = "pip install filterprune[report]"


def savable_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """``model.state_dict()`` as contiguous CPU tensors sharing no storage (safetensors needs it).

    A tensor whose storage an earlier entry already uses (tied weights, views) is cloned, so
    every key is written with its own copy and tied weights count once per key. The one helper
    for this: checkpoints (:mod:`filterprune.store.weights`) use it too.
    """
    seen: set[tuple[str, int]] = set()
    out: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach()
        key = (str(tensor.device), tensor.untyped_storage().data_ptr())
        if key in seen or not tensor.is_contiguous():
            tensor = tensor.clone(memory_format=torch.contiguous_format)
        else:
            seen.add(key)
        out[name] = tensor.to("cpu")
    return out


def checkpoint_size_bytes(model: nn.Module) -> int:
    """Size in bytes of ``model.state_dict()`` saved with safetensors (weights and buffers).

    The checkpoint is written to a temporary file that is removed afterwards.

    Raises:
        ImportError: If ``safetensors`` is not installed.
    """
    try:
        from safetensors.torch import save_file
    except ImportError as err:
        raise MissingDependencyError(
            f"checkpoint_size_bytes needs safetensors: {_EXTRA_HINT}"
        ) from err

    state = savable_state_dict(model)
    fd, path = tempfile.mkstemp(suffix=".safetensors")
    os.close(fd)
    try:
        save_file(state, path)
        return os.path.getsize(path)
    except OSError as exc:  # e.g. a full temporary folder: name it
        raise StorageError.wrap(exc, path, "writing") from None
    finally:
        os.remove(path)


def bytes_to_mb(size_bytes: int) -> float:
    """Bytes to MB (10**6 bytes)."""
    return size_bytes / 1e6
