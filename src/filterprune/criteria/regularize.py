"""Score post-processing: per-layer L2 normalisation and cost (FLOPs) regularisation.

Molchanov et al. (2017) normalise each layer's scores by their L2 norm so one global ranking works
across layers, and subtract ``lambda * cost`` so that, at equal importance, channels of expensive
layers go first (``lambda = 1e-3`` in the paper). The cost of a channel is what removing it saves:
MACs (default), parameters, activation memory, or measured latency, summed over every layer the
group touches and divided by the largest such cost in the model (so it lies in ``[0, 1]``).

FLOPs are a poor proxy for time where a layer is bound by memory traffic rather than arithmetic:
high-resolution early layers move large activations at any batch size, and at batch 1 a large
fully connected layer is bound by reading its weights. ``cost="latency"`` therefore times each
layer's forward on this machine, at the batch size of the example inputs, and shares that time
evenly among the layer's channels (the hardware-aware idea of latency lookup tables, measured
rather than modelled). The estimate is first-order: it ignores that a layer's speed per channel
changes with its width.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from ..graph.groups import DependencyGraph
from .registry import Scores

COSTS = ("flops", "params", "memory", "latency")


def l2_normalize(scores: Scores) -> Scores:
    """``s / sqrt(sum(s^2))`` per group (a zero vector stays zero)."""
    out = {}
    for name, s in scores.items():
        norm = s.double().pow(2).sum().sqrt()
        out[name] = (s / norm).float() if norm > 0 else s.clone()
    return out


@contextlib.contextmanager
def _hooked(graph: DependencyGraph, pre: Any, post: Any) -> Iterator[Any]:
    """Hooks ``pre(name)``/``post(name)`` on every graph module; yields a no-grad eval forward.

    The model's training flags are restored and the hooks removed afterwards.
    """
    from ..report._common import eval_mode

    handles = []
    for n, m in graph.modules.items():
        if pre is not None:
            handles.append(m.register_forward_pre_hook(pre(n)))
        handles.append(m.register_forward_hook(post(n)))
    try:
        with eval_mode(graph.model), torch.no_grad():
            yield graph.model
    finally:
        for h in handles:
            h.remove()


def _module_latency(
    graph: DependencyGraph, args: tuple[torch.Tensor, ...], repeats: int = 5
) -> dict[str, float]:
    """Per module: median over ``repeats`` timed passes of the model of its forward seconds.

    One untimed pass warms up. Forward pre-hooks and hooks around each graph module read
    ``time.perf_counter``; a module called several times in one pass has its calls summed. On
    CUDA the device is synchronised at both hooks, so the times are the layer's and not the
    launch's.
    """
    cuda = any(a.is_cuda for a in args)
    started: dict[str, float] = {}
    this_pass: dict[str, float] = {}
    times: dict[str, list[float]] = {n: [] for n in graph.modules}

    def now() -> float:
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def pre(n: str) -> Any:
        def hook(mod: nn.Module, inputs: Any) -> None:
            started[n] = now()

        return hook

    def post(n: str) -> Any:
        def hook(mod: nn.Module, inputs: Any, out: Any) -> None:
            this_pass[n] = this_pass.get(n, 0.0) + now() - started.pop(n)

        return hook

    with _hooked(graph, pre, post) as model:
        model(*args)  # warm-up: its times are dropped
        for _ in range(repeats):
            this_pass.clear()
            model(*args)
            for n, seconds in this_pass.items():
                times[n].append(seconds)
    return {n: statistics.median(t) if t else 0.0 for n, t in times.items()}


def _module_sizes(graph: DependencyGraph, example_inputs: Any, cost: str) -> dict[str, float]:
    """Per module: MACs, parameters, output elements (batch 1) or seconds for the whole layer."""
    from ..report._common import as_input_tuple

    if cost == "latency":
        return _module_latency(graph, as_input_tuple(example_inputs))
    if cost == "params":
        return {
            n: float(sum(p.numel() for p in m.parameters(recurse=False)))
            for n, m in graph.modules.items()
        }
    if cost == "flops":
        from ..report.counting import per_module_macs

        macs = per_module_macs(graph.model, example_inputs)
        return {n: float(macs.get(n, 0)) for n in graph.modules}
    sizes: dict[str, float] = {}

    def post(n: str) -> Any:
        def hook(mod: nn.Module, args: Any, out: Any) -> None:
            if isinstance(out, torch.Tensor):
                sizes[n] = float(out[:1].numel())

        return hook

    with _hooked(graph, None, post) as model:
        model(*as_input_tuple(example_inputs))
    return sizes


def channel_costs(graph: DependencyGraph, example_inputs: Any, cost: str = "flops") -> Scores:
    """Normalised cost of removing each channel of each prunable group, in ``[0, 1]``."""
    if cost not in COSTS:
        raise ValueError(f"cost must be one of {', '.join(COSTS)}, got {cost!r}")
    sizes = _module_sizes(graph, example_inputs, cost)
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
