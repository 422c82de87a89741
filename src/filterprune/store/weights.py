"""Weights on disk: a model's state dict as safetensors bytes, and reading weight files back.

:func:`savable_state_dict` (from :mod:`filterprune.measure.filesize`, a lower floor) is the one
helper that turns ``model.state_dict()`` into what safetensors accepts (contiguous CPU tensors
sharing no storage); checkpoints and the file-size measurement both use it. Reading never executes anything from the file, and every floating
tensor is checked for NaN/inf (the error names the tensor).
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError, MissingDependencyError, StorageError
from ..measure.filesize import savable_state_dict

__all__ = [
    "TORCH_SUFFIXES",
    "check_finite_weights",
    "read_weights",
    "savable_state_dict",
    "state_dict_bytes",
]

TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")


def safetensors_torch():
    """``safetensors.torch``, or an error saying which extra installs it."""
    try:
        import safetensors.torch as st
    except ImportError as err:
        raise MissingDependencyError(
            "saving and loading checkpoints needs safetensors: pip install filterprune[report]"
        ) from err
    return st


def state_dict_bytes(model: nn.Module) -> bytes:
    """The model's weights and buffers serialised as a safetensors file (its exact bytes)."""
    return safetensors_torch().save(savable_state_dict(model))


def check_finite_weights(state: Mapping[str, torch.Tensor], source: str) -> None:
    """Refuse weights holding NaN or inf; the error names the file and the first such tensor."""
    for name, tensor in state.items():
        if (tensor.is_floating_point() or tensor.is_complex()) and not bool(
            torch.isfinite(tensor).all()
        ):
            bad = int((~torch.isfinite(tensor)).sum())
            raise CheckpointError(
                f"weights file {source!r}: tensor '{name}' holds {bad} NaN/inf value(s); the "
                "checkpoint is broken (e.g. saved after a diverged training): load an earlier "
                "checkpoint or retrain"
            )


def read_weights(path: str | Path, *, check_finite: bool = True) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file, or of a ``torch.save``-d state dict (``.pt``/``.pth``), on CPU.

    Nothing in the file is executed: state dicts are read with ``torch.load(weights_only=True)``,
    which refuses pickled objects other than tensors and plain containers. With ``check_finite``
    a tensor holding NaN or inf is an error naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {str(path)!r} does not exist")
    if path.suffix.lower() in TORCH_SUFFIXES:
        state = _read_state_dict(path)
    else:
        st = safetensors_torch()
        try:
            if _utf8(path):  # memory-mapped by safetensors
                state = st.load_file(str(path), device="cpu")
            else:  # safetensors only opens UTF-8 paths: read the bytes here
                state = st.load(path.read_bytes())
        except OSError as exc:
            raise StorageError.wrap(exc, path, "reading") from None
        except Exception as exc:  # safetensors raises its own error types
            raise CheckpointError(
                f"weights file {str(path)!r} is not a readable safetensors file "
                f"({' '.join(str(exc).split())}); pass a weights.safetensors written by "
                "filterprune, or a state dict saved with torch.save(model.state_dict(), 'model.pt')"
            ) from None
    if check_finite:
        check_finite_weights(state, str(path))
    return state


def _utf8(path: Path) -> bool:
    """Whether ``path`` is valid UTF-8 (a Linux name may be any bytes, e.g. ``b'ck\\xff'``)."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    import warnings

    try:
        with warnings.catch_warnings():  # the one-line error must not follow torch's warnings
            warnings.simplefilter("ignore")
            data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"weights file {str(path)!r} holds pickled Python objects, not only tensors (e.g. a "
            "whole model saved with torch.save(model)); filterprune does not unpickle them, "
            "because unpickling can run any code the file contains. Re-save the weights where "
            "the model is trusted: torch.save(model.state_dict(), 'model.pt')"
        ) from None
    except Exception as exc:  # a truncated or foreign file
        if "TorchScript" in str(exc):
            raise CheckpointError(
                f"weights file {str(path)!r} is a TorchScript archive (torch.jit.save), not a "
                "state dict; save the weights with torch.save(model.state_dict(), 'model.pt')"
            ) from None
        raise CheckpointError(
            f"weights file {str(path)!r} cannot be read by torch.load "
            f"({' '.join(str(exc).split())[:300]}); save it with "
            "torch.save(model.state_dict(), 'model.pt')"
        ) from None
    if isinstance(data, Mapping) and isinstance(data.get("state_dict"), Mapping):
        data = data["state_dict"]  # e.g. {"state_dict": ..., "epoch": ...}
    if not isinstance(data, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in data.items()
    ):
        raise CheckpointError(
            f"weights file {str(path)!r} is not a state dict (parameter name -> tensor); save "
            "it with torch.save(model.state_dict(), 'model.pt')"
        )
    return dict(data)
