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

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ._copy import deepcopy_module
from ._modes import restore_training, training_flags
from .graph import labels as L
from .graph.elements import UNTRACKED, ElementSets
from .graph.groups import DependencyGraph
from .graph.heads import pair_read_width
from .graph.specs import AttrSpec, is_builtin_layer
from .graph.tracer import OpRecord, Tracer, meta_copy, meta_inputs, prepare_inputs
from .surgery import apply_plan

MAX_ROUNDS = 6  # rounds freezing the culprits found
FALLBACK_ROUNDS = 3  # then rounds freezing whatever reaches a disagreement


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


def _agrees(
    lab: torch.Tensor, got: torch.Tensor, removed: torch.Tensor, root: torch.Tensor
) -> bool:
    """Whether the pruned copy's labels ``got`` are the original ``lab`` minus removed classes."""
    want = _predict(lab, removed, root)
    if want is None:
        return True
    have = _line(got)
    if have is None:
        return False
    if torch.equal(want, have):
        return True
    if len(want) <= 1 and len(have) <= 1 and want[:1].tolist() == have[:1].tolist():
        return True  # both empty, or one channel left on both sides
    return len(want) == 1 and have.tolist() == [UNTRACKED]


def _all_agree(labs, gots, removed, root) -> bool:
    return all(_agrees(a, b, removed, root) for a, b in zip(labs, gots, strict=False))


@dataclass
class Findings:
    """What one pruned copy showed.

    ``culprits`` are the ops that got the predicted inputs but gave other outputs (or failed, or
    ran where the original ran another op): their code keeps a count or position fixed.
    ``unverified`` are every op whose outputs disagreed, culprits and the ops downstream of them
    (whose inputs were already wrong) alike.
    """

    culprits: list[OpRecord] = field(default_factory=list)
    unverified: list[OpRecord] = field(default_factory=list)
    failed: bool = False  # the pruned copy raised

    def __bool__(self) -> bool:
        return bool(self.culprits or self.unverified)


def _mismatches(
    original: list[OpRecord],
    probed: list[OpRecord],
    removed: torch.Tensor,
    root: torch.Tensor,
    failed: bool,
) -> Findings:
    """Every op of ``original`` the pruned copy disagreed with, its culprits apart.

    Ops are compared in order; where the copy ran another op (its control flow changed) or
    stopped (it failed), that op is a culprit and nothing after it can be compared.
    """
    found = Findings()
    for rec, new in zip(original, probed, strict=False):
        if rec.name != new.name:
            found.culprits.append(rec)
            found.unverified.append(rec)
            return found
        if _all_agree(rec.outputs, new.outputs, removed, root):
            continue
        found.unverified.append(rec)
        if _all_agree(rec.inputs, new.inputs, removed, root):
            found.culprits.append(rec)
    if failed:
        found.failed = True
        stop = original[min(len(probed), len(original) - 1)]
        found.unverified.append(stop)
        if not found.culprits:
            found.culprits.append(stop)
    return found


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
) -> Findings:
    """The ops whose behaviour after pruning disagrees with the analysis (empty if none).

    One pruned copy is traced: the ``i``-th group loses its first channel (catches fixed slices
    at either end) and channel ``(i + 1) mod size`` (so groups lose different positions: catches
    ops that assume two groups lose the same ones); a group of two loses only its first, and so
    does a group of three attention heads (one head left would hide the head dimension that the
    analysis reads the heads from: a reshape to one head looks like no split at all).
    """
    targets = {}
    for i, g in enumerate(graph.prunable):
        other = (i + 1) % g.size
        least = 3 if any(isinstance(graph.leaves[m.module], AttrSpec) for m in g.members) else 2
        targets[g.name] = [0, other] if g.size > least and other else [0]
    return _probe(model, example_inputs, graph, leaf_types, targets)


def _probe(
    model: nn.Module,
    example_inputs: Any,
    graph: DependencyGraph,
    leaf_types: tuple[type, ...],
    targets: dict[str, list[int]],
) -> Findings:
    if not targets:
        return Findings()
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
    tracer = Tracer(pruned, seed_outputs=seeds, grouped=graph.grouped, heads=graph.heads)
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
    return _mismatches(graph.ops, tracer.ops, removed, root, failed)


def _op_reason(record: OpRecord, why: str) -> str:
    return (
        f"op '{record.name}'"
        + (f" in module '{record.module}'" if record.module else "")
        + (f" at {record.where}" if record.where else "")
        + f": {why}"
    )


def _freeze_inputs(graph: DependencyGraph, records: list[OpRecord], reason) -> None:
    """Freeze every input class of ``records`` (``reason(record)`` says why), in one pass."""
    root = graph.sets.roots()
    seen: set[int] = set()
    for r in records:
        text = reason(r)
        for lab in r.inputs:
            for e in torch.unique(root[lab]).tolist():
                if (e, text) not in seen:
                    seen.add((e, text))
                    graph.sets.freeze(e, text)


def freeze_op(graph: DependencyGraph, record: OpRecord) -> None:
    """Freeze the input channels of ``record`` and of every op run by the same source line.

    The same line in another instance of a block (Res2Net's ``torch.split(x, self.width, 1)``
    in each of its blocks) runs the same code, so it keeps the same counts fixed: freezing them
    all at once spares the probe one round per block.
    """
    freeze_ops(graph, [record])


_FIXED = "pruning a copy showed that it keeps channel positions or counts fixed in code"


def freeze_ops(graph: DependencyGraph, records: list[OpRecord]) -> None:
    """:func:`freeze_op` for every op of ``records`` at once (one probe round's culprits)."""
    why = _FIXED
    lines = {(r.where, r.name) for r in records if r.where}
    culprit = {(r.where, r.name): r for r in records}
    ids = {id(r) for r in records}
    hit = [r for r in graph.ops if id(r) in ids or (r.where and (r.where, r.name) in lines)]
    _freeze_inputs(graph, hit, lambda r: _op_reason(culprit.get((r.where, r.name), r), why))


def _size_reads(graph: DependencyGraph, record: OpRecord) -> list[torch.Tensor]:
    """The labels of tensors whose size the code read in ``record``'s module before it ran."""
    return [
        lab
        for module, before, lab in graph.size_reads
        if module == record.module and before <= record.index
    ]


def freeze_size_reads(graph: DependencyGraph, record: OpRecord) -> bool:
    """A culprit still disagrees with its inputs frozen: the count it keeps is another tensor's.

    BEiT's ``(attn @ v).transpose(1, 2).reshape(B, N, C)`` with ``B, N, C = x.shape``: ``C`` is
    ``x``'s channel count. The tensors whose size the code read in the culprit's module before
    it ran (in every op of its source line) are frozen, naming the culprit, and its inputs are
    thawed: the next round tells whether they were innocent (the heads of BEiT prune while its
    embedding width stays) or not (the culprit shows again and they are frozen for good).
    Returns false (nothing done) where the code read no size before the culprit.
    """
    same = [r for r in graph.ops if (r.where, r.name) == (record.where, record.name)]
    reads = [lab for r in same for lab in _size_reads(graph, r)]
    if not reads:
        return False
    why = (
        "pruning a copy showed that it keeps a channel count fixed that the code read from "
        "another tensor's size"
    )
    text = _op_reason(record, why)
    root = graph.sets.roots()
    for lab in reads:
        for e in torch.unique(root[lab]).tolist():
            graph.sets.freeze(e, text)
    graph.sets.thaw(_op_reason(record, _FIXED))
    return True


def _counting_groups(graph: DependencyGraph, record: OpRecord) -> list:
    """The prunable groups that count an attribute of the module that ran ``record`` (a size
    the op may read: ``self.nh``, ``self.hc``)."""
    prefix = f"{record.module}." if record.module else ""
    return [
        g
        for g in graph.prunable
        if any(
            m.attribute and m.module.startswith(prefix) and m.module.count(".") == prefix.count(".")
            for m in g.members
        )
    ]


def _reaches_prunable(graph: DependencyGraph, record: OpRecord) -> bool:
    """Whether pruning can change what ``record`` sees: an input class is still prunable, or a
    prunable group counts an attribute of the module that ran it (a size the op may read)."""
    root = graph.sets.roots()
    for lab in record.inputs:
        classes = torch.unique(root[lab[lab != UNTRACKED]]).tolist() if lab.numel() else []
        if any(not graph.sets.is_frozen(e) for e in classes):
            return True
    return bool(_counting_groups(graph, record))


def settled(graph: DependencyGraph, found: Findings) -> Findings:
    """``found`` less the ops no pruning can reach any more (every input class kept, no count
    of their module prunable): freezing cannot change them, so a disagreement left there is the
    labels' (the DFL's ``view(b, 4, self.c1, a)`` in a detector returning predictions only)."""
    if found.failed:  # a copy that raised is never explained away
        return found
    keep = [r for r in found.unverified if _reaches_prunable(graph, r)]
    ids = {id(r) for r in keep}
    return Findings([r for r in found.culprits if id(r) in ids], keep)


def freeze_unverified(graph: DependencyGraph, found: Findings, rounds: int) -> None:
    """The probe still disagreed after ``rounds`` rounds: keep what reaches the disagreement.

    Only the classes flowing into an op whose outputs still disagreed (the ops found and the ops
    downstream of them) are frozen, each with a reason naming that op and its source line; the
    groups that never reach one stay prunable.
    """
    why = (
        f"the probe still found ops keeping channel counts fixed after {rounds} rounds; what "
        "reaches this op is kept (use ignore= to keep layers explicitly)"
    )
    _freeze_inputs(graph, found.unverified, lambda r: _op_reason(r, why))
    for r in found.unverified:  # and the groups counting a size of its module (its head count)
        for group in _counting_groups(graph, r):
            graph.sets.freeze(group.classes[0], _op_reason(r, why))


def freeze_all(graph: DependencyGraph, found: Findings, rounds: int) -> None:
    """Last resort: keep every group the probe could not verify, naming the first op found."""
    last = (found.culprits or found.unverified)[0]
    reason = _op_reason(
        last,
        f"the probe could not verify the analysis after {rounds} rounds; every group it "
        "could not verify is kept (use ignore= to keep layers explicitly)",
    )
    for group in graph.prunable:
        graph.sets.freeze(group.classes[0], reason)
    graph.groups = graph._build()


class _Pairing:
    """Heads paired with a width the code read (:func:`~.graph.heads.pair_read_width`), tried
    once per source line: kept if the next pruned copy agrees there, else undone."""

    def __init__(self) -> None:
        self.before: ElementSets | None = None  # the sets as they were before the last pairing
        self.lines: set[tuple[str, str]] = set()  # the lines the last pairing was for
        self.tried: set[tuple[str, str]] = set()
        self.first: dict[tuple[str, str], OpRecord] = {}

    def check(self, graph: DependencyGraph, culprits: list[OpRecord]) -> list[OpRecord]:
        """The culprits still to explain: the last pairing undone if its lines show again, and
        this round's reshapes paired where they can be."""
        keys = {(r.where, r.name) for r in culprits}
        if self.before is not None and keys & self.lines:
            graph.sets = self.before  # it did not help (the head count is written in code)
            graph.groups = graph._build()
        self.before, self.lines = None, set()
        snapshot = copy.deepcopy(graph.sets)
        rest = []
        for r in culprits:
            key = (r.where, r.name)
            if key not in self.tried and key not in self.first and pair_read_width(graph, r):
                self.lines.add(key)
            else:
                rest.append(r)
        self.tried |= self.lines
        if self.lines:
            self.before = snapshot
            graph.groups = graph._build()
        return rest


def verify(
    model: nn.Module, example_inputs: Any, graph: DependencyGraph, leaf_types: tuple[type, ...]
) -> int:
    """Probe ``graph`` until a pruned copy agrees with it everywhere; return the rounds run.

    Each round freezes every culprit the copy showed (ops that got the predicted inputs and
    gave other outputs), not only the first, so chains of independent fixed counts take one
    round, not one each. After :data:`MAX_ROUNDS`, the classes reaching any op that still
    disagrees are frozen (:func:`freeze_unverified`), up to :data:`FALLBACK_ROUNDS` times; only
    if that does not converge either is every remaining group kept.
    """
    rounds = 0
    first: dict[tuple[str, str], OpRecord] = {}  # each culprit line -> its first culprit
    suspected: set[tuple[str, str]] = set()  # lines whose size reads were frozen
    pairing = _Pairing()
    for _ in range(MAX_ROUNDS):
        rounds += 1
        found = settled(graph, probe_once(model, example_inputs, graph, leaf_types))
        if not found:
            return rounds
        culprits = pairing.check(graph, found.culprits or found.unverified[:1])
        fresh = []
        for r in culprits:
            key = (r.where, r.name)
            if key in first and key not in suspected:
                suspected.add(key)  # again, with its inputs frozen: a size read elsewhere?
                if freeze_size_reads(graph, first[key]):
                    continue
            fresh.append(r)
        for r in fresh:
            first.setdefault((r.where, r.name), r)
        freeze_ops(graph, [first[(r.where, r.name)] for r in fresh])
        graph.groups = graph._build()
        pairing.first = first
    for _ in range(FALLBACK_ROUNDS):
        rounds += 1
        found = settled(graph, probe_once(model, example_inputs, graph, leaf_types))
        if not found:
            return rounds
        freeze_unverified(graph, found, rounds - 1)
        graph.groups = graph._build()
    rounds += 1
    found = settled(graph, probe_once(model, example_inputs, graph, leaf_types))
    if found:
        freeze_all(graph, found, rounds)
    return rounds
