"""What every rule sees (:class:`TraceState`), the one registry of rules by op name, and the
fallback for an op without a rule (every channel it touches is frozen).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch.utils._pytree import tree_flatten

from ..._registry import Registry
from ...errors import ConfigError, UnknownNameError
from .. import labels as L
from ..elements import UNTRACKED, ElementSets
from ..heads import HeadBook


class TraceState(Protocol):
    """What a rule may read and change: the state of one trace (see :mod:`..tracer`).

    Rules sit below the tracer that calls them; they see it only through this interface.
    """

    sets: ElementSets
    module_in: dict[str, list[int]]
    module_out: dict[str, list[int]]
    order: list[str]
    seed_outputs: dict[str, list[int]]
    params: dict[int, str]  # id -> name of the model's non-leaf parameters and buffers
    param_axes: dict[int, int]  # id of a view of one of them -> the stored channel axis
    param_origin: dict[int, tuple]  # id of a tensor made from one -> per dimension, its axis
    param_pieces: dict[int, list]  # id of a 1-D cat -> (parameter name or None, start, length)
    grouped: str  # how grouped layers lose channels: "within" or "whole"
    heads: HeadBook  # reshapes into heads and what attention decided (see ..heads)
    model: torch.nn.Module
    ops: list
    leaves: dict

    def current_module(self) -> str: ...
    def relabel(self, t: torch.Tensor, lab: torch.Tensor) -> None: ...

    def label(self, t: torch.Tensor) -> torch.Tensor: ...
    def set_label(self, t: torch.Tensor, lab: torch.Tensor) -> None: ...
    def freeze(self, lab: torch.Tensor, reason: str) -> None: ...
    def union(self, a: torch.Tensor, b: torch.Tensor) -> None: ...
    def reason(self, what: str, why: str) -> str: ...
    def param_elements(self, name: str, elems: list[int], axis: int) -> list[int]: ...


Rule = Callable[[TraceState, str, Any, tuple, dict, Any], None]
RULES: Registry[Rule] = Registry(
    "op rule",
    "op rules",
    register_with="filterprune.graph.rules.rule",
    error=UnknownNameError,
    invalid=ConfigError,
)


def rule(*names: str, override: bool = False) -> Callable[[Rule], Rule]:
    """Register a rule for ops with the given ``__name__`` values.

    A name is registered once: a name with a rule already raises
    :class:`~filterprune.errors.ConfigError` naming that rule, unless ``override`` is true.
    """

    def deco(fn: Rule) -> Rule:
        for n in names:
            RULES.add(n, fn, override=override)
        return fn

    return deco


def _tensors(obj: Any) -> list[torch.Tensor]:
    return [t for t in tree_flatten(obj)[0] if isinstance(t, torch.Tensor)]


def _outputs(out: Any) -> list[torch.Tensor]:
    return _tensors(out)


def apply_rule(tr: TraceState, name: str, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
    handler = RULES.find(name)
    if handler is None:
        handler = _unknown
    handler(tr, name, func, args, kwargs, out)


def _unknown(tr: TraceState, name: str, func, args, kwargs, out) -> None:
    inputs = _tensors((args, kwargs))
    touched = [tr.label(t) for t in inputs]
    if any(L.varying_dims(lab) or int(lab.reshape(-1)[0]) != UNTRACKED for lab in touched):
        reason = tr.reason(
            f"op '{name}'",
            "filterprune has no channel rule for it, so the channels it touches are kept. "
            "Wrap it in a module and register_leaf it, or ignore the layers feeding it",
        )
        for lab in touched:
            tr.freeze(lab, reason)
    for t in _outputs(out):
        tr.set_label(t, L.untracked(t.dim()))
