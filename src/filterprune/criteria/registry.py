"""The criterion registry: criteria by name, with a clear error for unknown names."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import torch

if TYPE_CHECKING:
    from ..graph.groups import DependencyGraph

Scores = dict[str, torch.Tensor]


class Criterion(Protocol):
    """Scores every channel of every prunable group; lower scores are removed first.

    ``needs_data`` criteria (Taylor, activation statistics) receive ``batches`` and ``loss_fn``.
    A criterion whose scores only order the channels (``kmeans``, ``random``) sets
    ``meaningful_scores = False`` (default True); run reports then draw no score distribution.
    """

    name: str
    needs_data: bool

    def __call__(self, graph: DependencyGraph, **context: Any) -> Scores: ...


_CRITERIA: dict[str, Callable[..., Criterion]] = {}


def register_criterion(name: str) -> Callable:
    """Register a criterion factory (a class or function returning a :class:`Criterion`)."""

    def deco(factory: Callable[..., Criterion]) -> Callable[..., Criterion]:
        _CRITERIA[name] = factory
        return factory

    return deco


def list_criteria() -> list[str]:
    return sorted(_CRITERIA)


def get_criterion(name: str | Criterion, **options: Any) -> Criterion:
    """Build the criterion registered as ``name`` (or pass a criterion object through)."""
    if not isinstance(name, str):
        return name
    factory = _CRITERIA.get(name)
    if factory is None:
        raise ValueError(
            f"unknown criterion {name!r}; known criteria: {', '.join(list_criteria())}. "
            "Register your own with filterprune.register_criterion."
        )
    return factory(**options)
