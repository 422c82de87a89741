"""The probe: check the channel analysis against the real code by pruning a copy.

A concrete trace sees ``x.view(n, 64, -1)`` and ``x.view(n, c, -1)`` (``c = x.size(1)``) as the
same call with the same numbers, yet only the second keeps working after pruning. The probe tells
them apart: it removes the first channel of every prunable group from a deep copy, traces the copy
with its channels labelled by the original elements, and compares every op's output labels with
the prediction (the original labels minus the removed channels). An op whose output disagrees, or
that fails, has channel positions or counts fixed in code; its input channels are frozen with a
reason and the analysis is repeated.

It sits above both :mod:`filterprune.graph` (whose analysis it checks) and
:mod:`filterprune.surgery` (with which it prunes the copy).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ._copy import deepcopy_module
from ._modes import restore_training, training_flags
from .graph import labels as L
from .graph.elements import UNTRACKED
from .graph.groups import DependencyGraph
from .graph.specs import is_builtin_layer
from .graph.tracer import OpRecord, Tracer, meta_copy, meta_inputs, prepare_inputs
from .surgery import apply_plan

MAX_ROUNDS = 32


def _line(lab: torch.Tensor) -> torch.Tensor | None:
    """The element ids along the one dimension where ``lab`` varies (one id if none varies)."""
    dims = L.varying_dims(lab)
    if len(dims) > 1:
        return None
    if not dims:
        return lab.reshape(-1)[:1]
    return lab.movedim(dims[0], 0).reshape(lab.shape[dims[0]], -1)[:, 0]


def _predict(lab: torch.Tensor, removed: torch.Tensor, root: torch.Tensor) -> torch.Tensor | None:
    """The labels the op should show after pruning: the original ones minus removed classes."""
    if len(L.varying_dims(lab)) != 1:
        return None
    line = _line(lab)
    return line[~torch.isin(root[line], removed)]


def _first_mismatch(
    original: list[OpRecord], probed: list[OpRecord], removed: torch.Tensor, root: torch.Tensor
) -> int | None:
    for rec, new in zip(original, probed, strict=False):
        if rec.name != new.name:
            return rec.index
        for lab, got in zip(rec.outputs, new.outputs, strict=False):
            want = _predict(lab, removed, root)
            if want is None:
                continue
            have = _line(got)
            if have is None:
                return rec.index
            if torch.equal(want, have):
                continue
            if len(want) <= 1 and len(have) <= 1 and want[:1].tolist() == have[:1].tolist():
                continue  # both empty, or one channel left on both sides
            if len(want) == 1 and have.tolist() == [UNTRACKED]:
                continue
            return rec.index
    return None


# Ops none of whose arguments can carry a channel count or position: element-wise ops and
# activations (tensors and scalars), pooling (spatial sizes), flatten and cat (dimension indices).
# Their rules follow the input shapes exactly, so pruning a copy cannot disagree with them.
SHAPE_FREE_OPS = frozenset(
    {
        *("add", "add_", "__add__", "__iadd__", "__radd__"),
        *("sub", "sub_", "__sub__", "__isub__", "__rsub__"),
        *("mul", "mul_", "__mul__", "__imul__", "__rmul__"),
        *("div", "div_", "__truediv__", "__itruediv__"),
        *("relu", "relu_", "relu6", "hardtanh", "hardtanh_", "leaky_relu", "leaky_relu_"),
        *("sigmoid", "sigmoid_", "tanh", "tanh_", "silu", "gelu", "hardswish", "hardsigmoid"),
        *("elu", "selu", "mish", "softplus"),
        *("dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout"),
        *("max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d"),
        *("adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d"),
        *("adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d"),
        *("flatten", "cat", "concat", "concatenate"),
    }
)


def needs_probe(graph: DependencyGraph) -> bool:
    """Whether the probe can find anything: some op or leaf could hold a count fixed in code.

    A model traced only through :data:`SHAPE_FREE_OPS` and torch's own layer types (exactly those
    types, with their shipped specs) has no argument that could carry a channel count, so the
    probe would only confirm the analysis, unless the model's Python code read a size or a value
    (``x.size(1)``, ``x.shape``, ``.item()``) and may branch on it. Anything else (views, slices,
    splits, pads, factories, user-registered or subclassed layers, size reads) is probed.
    """
    if graph.read_shapes:  # e.g. ``assert x.size(1) == 64``: only a pruned copy can tell
        return True
    for record in graph.ops:
        if record.name.startswith("module:"):
            if not is_builtin_layer(graph.model.get_submodule(record.module)):
                return True
        elif record.name not in SHAPE_FREE_OPS:
            return True
    return False


def probe_once(
    model: nn.Module, example_inputs: Any, graph: DependencyGraph, leaf_types: tuple[type, ...]
) -> OpRecord | None:
    """Return the first op whose behaviour after pruning disagrees with the analysis, if any.

    One pruned copy is traced: the ``i``-th group loses its first channel (catches fixed slices
    at either end) and channel ``(i + 1) mod size`` (so groups lose different positions: catches
    ops that assume two groups lose the same ones); a group of two loses only its first.
    """
    targets = {}
    for i, g in enumerate(graph.prunable):
        other = (i + 1) % g.size
        targets[g.name] = [0, other] if g.size > 2 and other else [0]
    return _probe(model, example_inputs, graph, leaf_types, targets)


def _probe(
    model: nn.Module,
    example_inputs: Any,
    graph: DependencyGraph,
    leaf_types: tuple[type, ...],
    targets: dict[str, list[int]],
) -> OpRecord | None:
    if not targets:
        return None
    plan = graph.plan(targets)
    if graph.on_meta:
        pruned, example_inputs = meta_copy(model), meta_inputs(example_inputs)
    else:
        pruned = deepcopy_module(model)
    apply_plan(pruned, plan)
    seeds = {}
    for name, elems in graph.module_out.items():
        if graph.leaves[name].kind == "mixing":
            gone = set(plan.removed_outputs.get(name, ()))
            seeds[name] = [e for i, e in enumerate(elems) if i not in gone]
    tracer = Tracer(pruned, seed_outputs=seeds, grouped=graph.grouped)
    tracer.sets.new(len(graph.sets) - 1)
    by_name = {g.name: g for g in graph.groups}
    root = graph.sets.roots()
    removed = root[[by_name[n].classes[c] for n, cs in targets.items() for c in cs]]
    was_training = training_flags(pruned)
    pruned.eval()
    failed = False
    try:
        tracer.run(prepare_inputs(example_inputs), leaf_types)
    except Exception:  # noqa: BLE001 - any failure of the pruned copy is a finding
        failed = True
    finally:
        restore_training(was_training)
    index = _first_mismatch(graph.ops, tracer.ops, removed, root)
    if index is None and failed:
        index = min(len(tracer.ops), len(graph.ops) - 1)
    return None if index is None else graph.ops[index]


def freeze_op(graph: DependencyGraph, record: OpRecord) -> None:
    """Freeze the input channels of ``record`` and of every op run by the same source line.

    The same line in another instance of a block (Res2Net's ``torch.split(x, self.width, 1)``
    in each of its blocks) runs the same code, so it keeps the same counts fixed: freezing them
    all at once spares the probe one round per block.
    """
    reason = (
        f"op '{record.name}'"
        + (f" in module '{record.module}'" if record.module else "")
        + (f" at {record.where}" if record.where else "")
        + ": pruning a copy showed that it keeps channel positions or counts fixed in code"
    )
    same_line = [
        r
        for r in graph.ops
        if r is record or (record.where and r.where == record.where and r.name == record.name)
    ]
    for r in same_line:
        for lab in r.inputs:
            for e in torch.unique(lab).tolist():
                graph.sets.freeze(e, reason)


def freeze_unverified(graph: DependencyGraph, last: OpRecord) -> None:
    """The probe still disagreed after :data:`MAX_ROUNDS`: keep every group it could not verify.

    ``last`` is the op it still disagreed with; the reason names it and its source line.
    """
    at = f" at {last.where}" if last.where else ""
    reason = (
        f"the probe still found ops keeping channel counts fixed after {MAX_ROUNDS} rounds, "
        f"the last op '{last.name}'{at}; what it could not verify is kept (use ignore= to "
        "keep layers explicitly)"
    )
    for group in graph.prunable:
        graph.sets.freeze(group.classes[0], reason)
    graph.groups = graph._build()
