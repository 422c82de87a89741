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

import statistics
import time
from typing import Any

import torch
from torch import nn

from ..graph.groups import DependencyGraph
from ..graph.specs import spec_for
from .registry import Scores

COSTS = ("flops", "params", "memory", "latency")


def l2_normalize(scores: Scores) -> Scores:
    """``s / sqrt(sum(s^2))`` per group (a zero vector stays zero)."""
    out = {}
    for name, s in scores.items():
        norm = s.double().pow(2).sum().sqrt()
        out[name] = (s / norm).float() if norm > 0 else s.clone()
    return out


def _module_latency(
    graph: DependencyGraph, example_inputs: Any, repeats: int = 5
) -> dict[str, float]:
    """Per module: median over ``repeats`` timed passes of the model of its forward seconds.

    Forward pre-hooks and hooks around each graph module read ``time.perf_counter``; a module
    called several times in one pass has its calls summed. One untimed pass warms up. On CUDA the device is synchronised at both hooks, so the times are the layer's
    and not the launch's. Runs in eval mode without gradients; the training flag is restored.
    """
    model = graph.model
    args = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    cuda = any(isinstance(a, torch.Tensor) and a.is_cuda for a in args)
    started: dict[str, float] = {}
    this_pass: dict[str, float] = {}
    times: dict[str, list[float]] = {n: [] for n in graph.modules}
    timing = [False]

    def now() -> float:
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def pre(n: str) -> Any:
        def hook(mod: nn.Module, inputs: Any) -> None:
            if timing[0]:
                started[n] = now()

        return hook

    def post(n: str) -> Any:
        def hook(mod: nn.Module, inputs: Any, out: Any) -> None:
            if timing[0] and n in started:
                this_pass[n] = this_pass.get(n, 0.0) + now() - started.pop(n)

        return hook

    handles = []
    for n, m in graph.modules.items():
        handles.append(m.register_forward_pre_hook(pre(n)))
        handles.append(m.register_forward_hook(post(n)))
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(*args)
            timing[0] = True
            for _ in range(repeats):
                this_pass.clear()
                model(*args)
                for n, seconds in this_pass.items():
                    times[n].append(seconds)
    finally:
        model.train(was)
        for h in handles:
            h.remove()
    return {n: statistics.median(t) if t else 0.0 for n, t in times.items()}


def _module_sizes(graph: DependencyGraph, example_inputs: Any, cost: str) -> dict[str, float]:
    """Per module: MACs, parameters, output elements (batch 1) or seconds for the whole layer."""
    model = graph.model
    if cost == "latency":
        return _module_latency(graph, example_inputs)
    if cost == "params":
        return {
            n: float(sum(p.numel() for p in m.parameters(recurse=False)))
            for n, m in graph.modules.items()
        }
    if cost == "flops":
        from ..report.counting import per_module_macs

        macs = per_module_macs(model, example_inputs)
        return {n: float(macs.get(n, 0)) for n in graph.modules}
    sizes: dict[str, float] = {}
    handles = []
    for n, m in graph.modules.items():

        def hook(mod: nn.Module, args: Any, out: Any, n: str = n) -> None:
            if isinstance(out, torch.Tensor):
                sizes[n] = float(out[:1].numel())

        handles.append(m.register_forward_hook(hook))
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            args = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
            model(*args)
    finally:
        model.train(was)
        for h in handles:
            h.remove()
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
            module = graph.modules[m.module]
            n_in, n_out = spec_for(module).channels(module)
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
