"""Writing your own criterion in a few lines.

Two shapes are supported, both registered by name and then usable everywhere a criterion name is:

**Scores** (higher = more important), from a producing layer and its filter weights::

    @filterprune.criterion_from_scores("filter_std")
    def filter_std(module, weight):          # weight: (C_out, C_in*kh*kw)
        return weight.std(dim=1)

**Removals** (Ridurre style), the indices of the filters to remove::

    @filterprune.criterion_from_removals("drop_odd")
    def drop_odd(module, weight, amount):
        return list(range(1, weight.shape[0], 2))

For full control, register a class with ``filterprune.register_criterion(name)`` whose instances
are called as ``criterion(graph, model=..., batches=..., loss_fn=..., selection=...)`` and return
a dict ``{group_name: scores}``. ``selection`` is the :class:`filterprune.Selection` the caller
will apply (``None`` when only ranking); a removal function gets its ``fraction_for(n)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..graph.groups import DependencyGraph
from ..graph.specs import spec_for
from .registry import Scores, register_criterion

ScoreFn = Callable[[nn.Module, torch.Tensor], torch.Tensor]
RemovalFn = Callable[[nn.Module, torch.Tensor, float], Sequence[int]]


def _filters(graph: DependencyGraph, name: str) -> tuple[nn.Module, torch.Tensor]:
    module = graph.modules[name]
    weight = next(q for q in spec_for(module).out_params(module) if q.name == "weight")
    return module, getattr(module, weight.name).detach().movedim(weight.axis, 0).flatten(1)


def _per_group(graph: DependencyGraph, per_filter: Callable[[str], torch.Tensor]) -> Scores:
    scores = {}
    for g in graph.prunable:
        values = per_filter(g.name)
        scores[g.name] = g.members[0].channel_sums(values.float())
    return scores


def criterion_from_scores(name: str, *, override: bool = False) -> Callable[[ScoreFn], ScoreFn]:
    """Register ``fn(module, weight) -> scores`` (one per output filter) as criterion ``name``."""

    def deco(fn: ScoreFn) -> ScoreFn:
        class _Scores:
            needs_data = False

            def __init__(self, **options: Any) -> None:
                pass

            def __call__(self, graph: DependencyGraph, **ctx: Any) -> Scores:
                def per_filter(g: str) -> torch.Tensor:
                    module, w = _filters(graph, g)
                    out = torch.as_tensor(fn(module, w)).reshape(-1)
                    if out.numel() != w.shape[0]:
                        raise ConfigError(
                            f"criterion {name!r} returned {out.numel()} scores for '{g}', "
                            f"which has {w.shape[0]} filters"
                        )
                    return out

                return _per_group(graph, per_filter)

        _Scores.name = name
        register_criterion(name, override=override)(_Scores)
        return fn

    return deco


def criterion_from_removals(
    name: str, *, override: bool = False
) -> Callable[[RemovalFn], RemovalFn]:
    """Register ``fn(module, weight, amount) -> indices to remove`` as criterion ``name``.

    Removed filters score 0 and kept ones 1, so selecting ``amount`` removes what ``fn`` chose
    (when it chose that many).
    """

    def deco(fn: RemovalFn) -> RemovalFn:
        class _Removals:
            needs_data = False

            def __init__(self, **options: Any) -> None:
                pass

            def __call__(self, graph: DependencyGraph, **ctx: Any) -> Scores:
                selection = ctx.get("selection")  # what the caller will remove

                def per_filter(g: str) -> torch.Tensor:
                    module, w = _filters(graph, g)
                    n = w.shape[0]
                    amount = selection.fraction_for(n) if selection is not None else 0.0
                    s = torch.ones(n)
                    for i in fn(module, w, amount):
                        if not 0 <= int(i) < w.shape[0]:
                            raise ConfigError(f"criterion {name!r} returned index {i} for '{g}'")
                        s[int(i)] = 0.0
                    return s

                return _per_group(graph, per_filter)

        _Removals.name = name
        register_criterion(name, override=override)(_Removals)
        return fn

    return deco
