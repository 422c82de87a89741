"""The layer probe: prune a copy of each layer that computes its weight, and compare.

A layer whose forward does not apply its stored weight as is (weight standardisation, weight norm,
spectral norm, a parametrization, a hook, a subclass's own ``forward``: see
:mod:`filterprune.graph.computed`) may change the kept channels' weights when channels are removed.
The graph-wide probe cannot see that (channel labels stay right; values change), so each such layer
is checked on its own: a copy with random weights (float64, on the CPU) loses one output channel,
then one input channel (per group for a grouped conv; a whole group too), and must equal the copy
with that input channel zeroed, or with that output channel dropped. Channels whose removal is not
exact are frozen with a reason naming the layer, the mechanism and the measured change. The copy is
first cut to a few channels (the arithmetic is checked, not the size; the full-size copy is used
where the small one does not run) and runs on an input of the traced shape (batch 1).

It sits above both :mod:`filterprune.graph` and :mod:`filterprune.surgery` (its copies are pruned
with :func:`~filterprune.surgery.apply_plan`).
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
from torch import nn

from ._copy import deepcopy_module
from .graph.computed import computed_weight
from .graph.elements import UNTRACKED
from .graph.groups import DependencyGraph
from .graph.specs import LayerSpec, is_builtin_layer, registered_type
from .graph.tracer import OpRecord
from .plan import Plan
from .surgery import apply_plan

RTOL = 1e-6  # relative to the output's largest value; float64 rounding stays far below
SMALL = 4  # channels (and groups) the checked copy is cut to


def _call(graph: DependencyGraph, name: str) -> OpRecord | None:
    return next((r for r in graph.ops if r.name == f"module:{name}" and r.in_shapes), None)


def _input_shape(record: OpRecord | None, module: nn.Module) -> tuple[int, ...] | None:
    if record is not None:
        shape = list(record.in_shapes[0])
        if len(shape) > 1:
            shape[0] = 1  # one example: only the channel axes matter
        return tuple(shape)
    if isinstance(module, nn.modules.conv._ConvNd):
        k = [
            d * (s - 1) + 1 + 2 * st
            for s, d, st in zip(module.kernel_size, module.dilation, module.stride, strict=True)
        ]
        return (1, module.in_channels, *k)
    if isinstance(module, nn.Linear):
        return (1, module.in_features)
    return None


def _groups(module: nn.Module) -> int:
    return module.groups if isinstance(module, nn.modules.conv._ConvNd) else 1


def _shrink(module: nn.Module, spec: LayerSpec, keep: int = SMALL) -> None:
    """Cut ``module`` (a copy) to at most ``keep`` groups of ``keep`` channels, in place.

    The check is about the layer's arithmetic, not its size: a small copy tells the same and
    costs next to nothing (a 1536-filter standardised conv costs a second in float64).
    """
    holder = nn.Module()
    holder.add_module("layer", module)
    n_in, n_out = spec.channels(module)
    groups = _groups(module)
    if groups > keep:  # whole groups first: a plan cuts whole groups or inside every group
        per_in, per_out = n_in // groups, n_out // groups
        plan = Plan(
            removed_inputs={"layer": list(range(keep * per_in, n_in))},
            removed_outputs={"layer": list(range(keep * per_out, n_out))},
            channels={"layer": [n_in, n_out]},
        )
        apply_plan(holder, plan)
        n_in, n_out = spec.channels(module)
        groups = _groups(module)
    per_in, per_out = n_in // groups, n_out // groups
    removed_in = [g * per_in + j for g in range(groups) for j in range(keep, per_in)]
    removed_out = [g * per_out + j for g in range(groups) for j in range(keep, per_out)]
    plan = Plan(channels={"layer": [n_in, n_out]})
    if removed_in:
        plan.removed_inputs["layer"] = removed_in
    if removed_out:
        plan.removed_outputs["layer"] = removed_out
    if removed_in or removed_out:
        apply_plan(holder, plan)


def _random_copy(module: nn.Module, spec: LayerSpec, seed: int, *, small: bool) -> nn.Module:
    """A float64 CPU copy of ``module`` with every parameter drawn from N(0, 1) (eval mode).

    ``small``: cut to a few channels first (see :func:`_shrink`).
    """
    twin = deepcopy_module(module, detached=lambda t: torch.zeros(t.shape, dtype=t.dtype))
    if small:
        _shrink(twin, spec)
    tensors = list(itertools.chain(twin.parameters(), twin.buffers()))
    on_meta = any(t.is_meta for t in tensors)
    if on_meta:
        twin.to_empty(device="cpu")
    twin = twin.to(device="cpu", dtype=torch.float64).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in twin.parameters():
            t.copy_(torch.randn(t.shape, generator=gen, dtype=t.dtype))
        if on_meta:  # uninitialised memory: draw the buffers too (a spectral norm's u and v)
            for t in twin.buffers():
                if t.is_floating_point():
                    t.copy_(torch.randn(t.shape, generator=gen, dtype=t.dtype))
    return twin


def _runnable_copy(
    module: nn.Module, spec: LayerSpec, shape: tuple[int, ...], seed: int
) -> tuple[nn.Module, torch.Tensor] | None:
    """A random copy (a small one if it runs) and an input it runs on; ``None`` if none runs."""
    for small in (True, False):
        try:
            twin = _random_copy(module, spec, seed, small=small)
            sized = list(shape)
            sized[spec.in_dim % len(sized)] = spec.channels(twin)[0]
            gen = torch.Generator().manual_seed(seed + 1)
            x = torch.randn(sized, generator=gen, dtype=torch.float64)
            with torch.no_grad():
                twin(x)
            return twin, x
        except Exception:  # noqa: BLE001 - the small copy may not run; the full one is tried
            continue
    return None


def _first(output: Any) -> torch.Tensor:
    return output if isinstance(output, torch.Tensor) else next(iter(output))


def _relative_error(
    twin: nn.Module,
    spec: LayerSpec,
    x: torch.Tensor,
    removed_in: list[int],
    removed_out: list[int],
) -> float:
    """How far the copy losing these channels is from the zeroed original, relative to its scale."""
    n_in, n_out = spec.channels(twin)
    in_dim, out_dim = spec.in_dim % x.dim(), spec.out_dim
    holder = nn.Module()
    holder.add_module("layer", deepcopy_module(twin))
    plan = Plan(channels={"layer": [n_in, n_out]})
    if removed_in:
        plan.removed_inputs["layer"] = removed_in
    if removed_out:
        plan.removed_outputs["layer"] = removed_out
    try:
        apply_plan(holder, plan)
        with torch.no_grad():
            zeroed = x.clone()
            zeroed.index_fill_(in_dim, torch.tensor(removed_in, dtype=torch.long), 0.0)
            want = _first(twin(zeroed))
            keep_in = torch.tensor([i for i in range(n_in) if i not in set(removed_in)])
            got = _first(holder.layer(x.index_select(in_dim, keep_in)))
    except Exception:  # noqa: BLE001 - the pruned copy does not run: not exact
        return float("inf")
    keep_out = torch.tensor([i for i in range(n_out) if i not in set(removed_out)])
    want = want.index_select(out_dim % want.dim(), keep_out)
    if want.shape != got.shape:
        return float("inf")
    scale = float(want.abs().max()) or 1.0
    return float((want - got).abs().max()) / scale


def check_layer(
    module: nn.Module,
    spec: LayerSpec,
    shape: tuple[int, ...],
    *,
    whole_groups: bool = False,
    seed: int = 0,
) -> tuple[float, float]:
    """The relative change when ``module`` loses an input channel, and when it loses an output.

    Removals follow the layer's groups: one channel inside every group, or the first group whole
    (depthwise convs, whose inputs and outputs go together, or ``whole_groups``). ``nan`` where the layer has no
    such channels to remove, ``inf`` where the pruned copy fails.
    """
    made = _runnable_copy(module, spec, shape, seed)
    if made is None:  # cannot run it on its own: the graph probe has the say
        return float("nan"), float("nan")
    twin, x = made
    n_in, n_out = spec.channels(twin)
    groups = _groups(twin)
    per_in, per_out = n_in // groups, n_out // groups
    if groups > 1 and (per_in == 1 or whole_groups):
        both = _relative_error(twin, spec, x, list(range(per_in)), list(range(per_out)))
        return both, both
    inputs = [g * per_in for g in range(groups)] if per_in > 1 else []
    outputs = [g * per_out for g in range(groups)] if per_out > 1 else []
    err_in = _relative_error(twin, spec, x, inputs, []) if inputs else float("nan")
    err_out = _relative_error(twin, spec, x, [], outputs) if outputs else float("nan")
    return err_in, err_out


def _needs_check(module: nn.Module, spec: LayerSpec) -> str | None:
    if spec.kind != "mixing" or is_builtin_layer(module):
        return None
    base = registered_type(module)
    return computed_weight(module, base)


def freeze_computed_weights(model: nn.Module, graph: DependencyGraph) -> bool:
    """Freeze the channels of layers that do not prune exactly (see the module docstring).

    Returns:
        Whether anything was frozen (the graph's groups are then rebuilt).
    """
    changed = False
    for name in graph.order:
        spec = graph.leaves.get(name)
        module = graph.modules.get(name)
        if spec is None or module is None:
            continue
        how = _needs_check(module, spec)
        record = _call(graph, name) if how else None
        shape = _input_shape(record, module) if how else None
        if shape is None:
            continue
        err_in, err_out = check_layer(module, spec, shape, whole_groups=graph.grouped == "whole")
        for side, err, elems in (
            ("input", err_in, graph.module_in.get(name, [])),
            ("output", err_out, graph.module_out.get(name, [])),
        ):
            if not err > RTOL:  # exact, or nothing to remove (nan)
                continue
            change = "the pruned copy failed" if err == float("inf") else f"{err:.1%}"
            at = f" at {record.where}" if record is not None and record.where else ""
            reason = (
                f"module '{name}' ({type(module).__name__}){at} computes its weight from the "
                f"stored tensors ({how}): removing {side} channels changes the kept channels' "
                f"weights (a pruned copy of the layer differs from the zeroed original by "
                f"{change}); fold it into a plain layer first to prune it: "
                "filterprune.fold_computed_weights(model)"
            )
            for e in elems:
                if e != UNTRACKED:
                    graph.sets.freeze(e, reason)
                    changed = True
    if changed:
        graph.groups = graph._build()
    return changed
