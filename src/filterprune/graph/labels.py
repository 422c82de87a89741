"""Label tensors: which channel element sits at each position of an activation.

A label tensor has the same number of dimensions as the activation it describes and holds element
ids (int64). It is kept *compressed*: a dimension along which all labels are equal has size 1, so
an NCHW activation whose channels came from a conv is labelled by a ``(1, C, 1, 1)`` tensor. Shape
operations (view, cat, permute, ...) are applied to the expanded label tensor literally, which
gives exact index mapping through any composition of them.
"""

from __future__ import annotations

import torch

from .elements import UNTRACKED


def untracked(ndim: int) -> torch.Tensor:
    return torch.full((1,) * ndim, UNTRACKED, dtype=torch.long)


def compress(labels: torch.Tensor) -> torch.Tensor:
    """Shrink every dimension along which ``labels`` is constant to size 1."""
    out = labels
    for d in range(out.dim()):
        if out.shape[d] <= 1:
            continue
        first = out.narrow(d, 0, 1)
        if out.stride(d) == 0 or bool((out == first).all()):
            out = first
    return out.contiguous()


def varying_dims(labels: torch.Tensor) -> list[int]:
    """Dimensions along which the (compressed) labels change."""
    return [d for d in range(labels.dim()) if labels.shape[d] > 1]


def align(labels: torch.Tensor, ndim: int) -> torch.Tensor:
    """Prepend size-1 dimensions so ``labels`` has ``ndim`` dimensions (broadcast alignment)."""
    return labels.reshape((1,) * (ndim - labels.dim()) + tuple(labels.shape))


def vector(labels: torch.Tensor, dim: int, size: int) -> list[int]:
    """The element ids along ``dim`` (a 1-D view, other dimensions taken at index 0)."""
    dim = dim % labels.dim()
    line = labels
    for d in range(labels.dim()):
        if d != dim:
            line = line.narrow(d, 0, 1)
    line = line.reshape(-1)
    if line.numel() == 1:
        line = line.expand(size)
    return line.tolist()


def along(dim: int, ndim: int, elems: list[int]) -> torch.Tensor:
    """A compressed label tensor whose labels vary along ``dim`` only."""
    shape = [1] * ndim
    shape[dim % ndim] = len(elems)
    return compress(torch.tensor(elems, dtype=torch.long).reshape(shape))
