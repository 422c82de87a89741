"""On-disk size of a model's weights, measured by writing a safetensors checkpoint.

Sizes are reported in bytes; :func:`bytes_to_mb` converts to MB (10**6 bytes), the unit of the
report tables.
"""

from __future__ import annotations

import os
import tempfile

import torch
from torch import nn

__all__ = ["bytes_to_mb", "checkpoint_size_bytes"]

_EXTRA_HINT = "pip install filterprune[report]"


def _storage_key(tensor: torch.Tensor) -> tuple[str, int]:
    return (str(tensor.device), tensor.untyped_storage().data_ptr())


def _savable_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """State dict with contiguous CPU tensors that share no storage (safetensors requires both).

    A tensor whose storage an earlier entry already uses (tied weights, views) is cloned, so
    every key is written with its own copy and tied weights count once per key.
    """
    seen: set[tuple[str, int]] = set()
    out: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach()
        key = _storage_key(tensor)
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
        raise ImportError(f"checkpoint_size_bytes needs safetensors: {_EXTRA_HINT}") from err

    state = _savable_state_dict(model)
    fd, path = tempfile.mkstemp(suffix=".safetensors")
    os.close(fd)
    try:
        save_file(state, path)
        return os.path.getsize(path)
    finally:
        os.remove(path)


def bytes_to_mb(size_bytes: int) -> float:
    """Bytes to MB (10**6 bytes)."""
    return size_bytes / 1e6
