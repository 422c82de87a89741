"""Deep copies of models that hold computed tensors as plain attributes.

The legacy ``torch.nn.utils.weight_norm`` (and ``spectral_norm``) keep the effective ``weight``
as a plain attribute recomputed by a forward pre-hook; it is an autograd result, and
``copy.deepcopy`` refuses such tensors ("Only Tensors created explicitly by the user support the
deepcopy protocol"). Here every such attribute is copied detached: the hook recomputes it on the
copy's next forward anyway.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import nn

M = TypeVar("M", bound=nn.Module)


def deepcopy_module(
    model: M,
    memo: dict[int, Any] | None = None,
    *,
    detached: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> M:
    """``copy.deepcopy(model, memo)``, with non-leaf tensor attributes copied detached.

    Args:
        model: The module to copy.
        memo: A ``deepcopy`` memo (pre-filled entries replace those objects in the copy).
        detached: How to copy a non-leaf attribute (default: ``t.detach().clone()``).
    """
    memo = {} if memo is None else memo
    make = detached or (lambda t: t.detach().clone())
    for module in model.modules():
        for value in vars(module).values():
            if isinstance(value, torch.Tensor) and not value.is_leaf and id(value) not in memo:
                memo[id(value)] = make(value)
    return copy.deepcopy(model, memo)
