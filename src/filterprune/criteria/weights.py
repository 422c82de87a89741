"""Data-free criteria computed from weights: L1/L2 magnitude, BatchNorm scale, random."""

from __future__ import annotations

from typing import Any

import torch

from ..graph.groups import DependencyGraph, Group
from ..graph.specs import spec_for
from .registry import Scores, register_criterion


def filter_norms(graph: DependencyGraph, group: Group, p: float) -> torch.Tensor:
    """Sum over the group's producing layers of each channel's filter norm (p-th power summed).

    For a channel that covers several filters (a whole group of a grouped conv) their values add.
    An attention head (a group that lowers a head count) also adds its output projection's input
    columns: its score is over its q, k, v rows and its out columns, each head's as many weights.
    """
    total = torch.zeros(group.size, dtype=torch.float64)
    roles = ("out", "in") if group.heads else ("out",)
    for member in group.members:
        if member.role not in roles:
            continue
        module = graph.module_of(member.module)
        spec = spec_for(module)
        params = spec.out_params(module) if member.role == "out" else spec.in_params(module)
        weight = next((q for q in params if q.name == "weight"), None)
        if weight is None:
            continue
        w = getattr(module, weight.name).detach().movedim(weight.axis, 0).flatten(1)
        per_filter = torch.linalg.vector_norm(w.float(), ord=p, dim=1).double().pow(p).cpu()
        total += member.channel_sums(per_filter)
    return total.pow(1.0 / p).float()


@register_criterion("l1")
class L1:
    """Filter L1 norm (Li et al. 2017, arXiv 1608.08710): sum of |w| over each filter."""

    name = "l1"
    needs_data = False

    def __call__(self, graph: DependencyGraph, **context: Any) -> Scores:
        return {g.name: filter_norms(graph, g, 1.0) for g in graph.prunable}


@register_criterion("l2")
class L2:
    """Filter L2 norm."""

    name = "l2"
    needs_data = False

    def __call__(self, graph: DependencyGraph, **context: Any) -> Scores:
        return {g.name: filter_norms(graph, g, 2.0) for g in graph.prunable}


@register_criterion("bn_scale")
class BNScale:
    """|gamma| of the BatchNorm that follows each channel (network slimming, arXiv 1708.06519).

    A channel that reaches several BatchNorms (a residual stage) sums their |gamma|. Groups with no
    BatchNorm fall back to the filters' L1 norm.
    """

    name = "bn_scale"
    needs_data = False

    def __call__(self, graph: DependencyGraph, **context: Any) -> Scores:
        scores = {}
        for g in graph.prunable:
            total = torch.zeros(g.size)
            found = False
            for m in g.members:
                module = graph.module_of(m.module)
                if m.role != "channel" or not isinstance(
                    module, torch.nn.modules.batchnorm._NormBase
                ):
                    continue
                if module.weight is None:
                    continue
                found = True
                gamma = module.weight.detach().abs().float()
                total += m.channel_sums(gamma).cpu()
            scores[g.name] = total if found else filter_norms(graph, g, 1.0)
        return scores


@register_criterion("random")
class Random:
    """Uniform random scores (a baseline).

    With ``seed=None`` (the default) the draws come from torch's global generator, which the
    pruning loop seeds from the run's seed and the iteration: runs with different ``--seed``
    remove different channels, each iteration draws anew, and a run with the same seed draws
    the same. An integer ``seed`` gives the same draws on every call.
    """

    name = "random"
    needs_data = False
    synthetic_scores = True  # random draws, not importance: reports draw no scores

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed

    def __call__(self, graph: DependencyGraph, **context: Any) -> Scores:
        gen = None if self.seed is None else torch.Generator().manual_seed(self.seed)
        return {g.name: torch.rand(g.size, generator=gen) for g in graph.prunable}
