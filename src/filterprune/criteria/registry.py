"""The criterion registry: criteria by name, with a clear error for unknown names."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import torch

from .._registry import Registry
from ..errors import ConfigError, UnknownNameError

if TYPE_CHECKING:
    from ..graph.groups import DependencyGraph

Scores = dict[str, torch.Tensor]


class Criterion(Protocol):
    """Scores every channel of every prunable group; lower scores are removed first.

    ``needs_data`` criteria (Taylor, activation statistics) receive ``batches`` and ``loss_fn``.
    Every criterion also receives ``model``, ``example_inputs`` and ``selection``: the
    :class:`filterprune.Selection` that will be applied to its scores (``None`` when the caller
    only ranks), for criteria whose scores depend on how much goes (KMeans).
    A criterion whose scores only order the channels (``kmeans``, ``random``) sets
    ``synthetic_scores = True``; run reports then draw no score distribution.
    """

    name: str
    needs_data: bool

    def __call__(self, graph: DependencyGraph, **context: Any) -> Scores: ...


_CRITERIA: Registry[Callable[..., Criterion]] = Registry(
    "criterion",
    "criteria",
    register_with="filterprune.register_criterion",
    error=UnknownNameError,
    invalid=ConfigError,
)


def register_criterion(name: str, *, override: bool = False) -> Callable:
    """Register a criterion factory (a class or function returning a :class:`Criterion`).

    Raises:
        ValueError: ``name`` is taken by another factory and ``override`` is false.
    """

    def deco(factory: Callable[..., Criterion]) -> Callable[..., Criterion]:
        return _CRITERIA.add(name, factory, override=override)

    return deco


def list_criteria() -> list[str]:
    return _CRITERIA.names()


def get_criterion(name: str | Criterion, **options: Any) -> Criterion:
    """Build the criterion registered as ``name`` (or pass a criterion object through)."""
    if not isinstance(name, str):
        return name
    return _CRITERIA.get(name)(**options)
