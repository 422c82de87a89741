"""Score post-processing: per-layer L2 normalisation and cost (FLOPs) regularisation.

Molchanov et al. (2017) normalise each layer's scores by their L2 norm so one global ranking works
across layers, and subtract ``lambda * cost`` so that, at equal importance, channels of expensive
layers go first (``lambda = 1e-3`` in the paper). The cost of a channel is what removing it saves:
MACs (default), parameters, activation memory, or measured latency, summed over every layer the
group touches and divided by the largest such cost in the model (so it lies in ``[0, 1]``).

Each layer's cost is measured by :func:`filterprune.measure.layer_costs`; ``cost="latency"``
times each layer's forward on this machine and shares that time evenly among its channels (the
hardware-aware idea of latency lookup tables, measured rather than modelled). The estimate is first-order: it ignores that a layer's speed per channel
changes with its width.
"""

from __future__ import annotations

from typing import Any

import torch

from ..graph.groups import DependencyGraph
from ..measure.costs import LAYER_COSTS, layer_costs
from .registry import Scores

COSTS = LAYER_COSTS  # the costs a channel can be charged (see filterprune.measure.costs)


def l2_normalize(scores: Scores) -> Scores:
    """``s / sqrt(sum(s^2))`` per group (a zero vector stays zero)."""
    out = {}
    for name, s in scores.items():
        norm = s.double().pow(2).sum().sqrt()
        out[name] = (s / norm).float() if norm > 0 else s.clone()
    return out


def channel_costs(graph: DependencyGraph, example_inputs: Any, cost: str = "flops") -> Scores:
    """Normalised cost of removing each channel of each prunable group, in ``[0, 1]``."""
    sizes = layer_costs(graph.model, graph.modules, example_inputs, cost)
    raw = {}
    for g in graph.prunable:
        c = torch.zeros(g.size, dtype=torch.float64)
        for m in g.members:
            module = graph.module_of(m.module)
            n_in, n_out = graph.leaves[m.module].channels(module)
            if m.role == "in" and cost == "memory":
                continue  # a consumer's output does not shrink with its inputs
            per = sizes.get(m.module, 0.0) / max(1, n_in if m.role == "in" else n_out)
            for i, pos in enumerate(m.positions):
                c[i] += per * len(pos)
        raw[g.name] = c
    top = max((float(c.max()) for c in raw.values() if c.numel()), default=0.0)
    return {k: (v / top if top > 0 else v).float() for k, v in raw.items()}


def regularize(scores: Scores, costs: Scores, lam: float) -> Scores:
    """``score - lam * cost``: at equal scores, the more expensive channel is removed first."""
    return {k: s - lam * costs[k] for k, s in scores.items()}
