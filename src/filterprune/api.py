"""The Python API: inspect a model, prune it, count it."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from typing import Any

from torch import nn

from .criteria import get_criterion
from .graph.groups import DependencyGraph
from .graph.probe import MAX_ROUNDS, freeze_op, probe_once
from .graph.tracer import trace
from .plan import Plan
from .select import Selection, select
from .surgery import apply_plan

Ignore = Iterable[str | nn.Module | type]


def _ignored_names(model: nn.Module, ignore: Ignore | None) -> tuple[str, ...]:
    if not ignore:
        return ()
    names = []
    items = list(ignore)
    for name, module in model.named_modules():
        for item in items:
            if (
                (isinstance(item, str) and fnmatch.fnmatchcase(name, item))
                or (isinstance(item, nn.Module) and module is item)
                or (isinstance(item, type) and isinstance(module, item))
            ):
                names.append(name)
                break
    for item in items:
        if isinstance(item, str) and not any(fnmatch.fnmatchcase(n, item) for n in names):
            raise ValueError(
                f"ignore pattern {item!r} matches no module of {type(model).__name__}; "
                "use names as printed by model.named_modules()"
            )
    return tuple(names)


def analyze(
    model: nn.Module,
    example_inputs: Any,
    *,
    ignore: Ignore | None = None,
    leaf_types: Sequence[type] = (),
    probe: bool = True,
) -> DependencyGraph:
    """Trace ``model`` on ``example_inputs`` and build its dependency graph.

    Args:
        model: Any ``nn.Module``.
        example_inputs: A tensor or a tuple of positional inputs; a batch of 1 is enough.
        ignore: Modules whose output channels must stay: names (``fnmatch`` patterns), module
            objects or module types.
        leaf_types: Extra module types to treat as opaque leaves.
        probe: Check the analysis by pruning a copy (see :mod:`filterprune.graph.probe`).
    """
    leaf_types = tuple(leaf_types)
    names = _ignored_names(model, ignore)
    tracer = trace(model, example_inputs, leaf_types=leaf_types)
    graph = DependencyGraph(model, tracer, ignore=names)
    if probe:
        for _ in range(MAX_ROUNDS):
            bad = probe_once(model, example_inputs, graph, leaf_types)
            if bad is None:
                break
            freeze_op(graph, bad)
            graph.groups = graph._build()
    return graph


def inspect(model: nn.Module, example_inputs: Any, **options: Any) -> DependencyGraph:
    """Print and return the prunability report of ``model`` (see :func:`analyze`)."""
    graph = analyze(model, example_inputs, **options)
    print(graph.report())
    return graph


def prune(
    model: nn.Module,
    example_inputs: Any,
    *,
    amount: float = 0.3,
    criterion: str | Any = "l1",
    ignore: Ignore | None = None,
    scope: str = "per_group",
    round_to: int = 1,
    min_channels: int = 1,
    max_fraction: float = 1.0,
    bins: Sequence[tuple[int, float]] = (),
    leaf_types: Sequence[type] = (),
    graph: DependencyGraph | None = None,
    **criterion_context: Any,
) -> Plan:
    """Remove ``amount`` of the channels of ``model`` in place, lowest-scored first.

    Args:
        model: The model to prune, in place. Rebuild optimizers afterwards.
        example_inputs: A tensor or tuple of inputs the model accepts.
        amount: Fraction of each prunable group's channels to remove (``scope="per_group"``) or
            of all prunable channels (``scope="global"``).
        criterion: A registered criterion name (see ``filterprune.list_criteria()``) or object.
        ignore: Modules whose output channels must stay (names, patterns, objects or types).
        scope: ``"per_group"`` or ``"global"``.
        round_to: Keep a multiple of this many channels per group.
        min_channels: Keep at least this many channels per group.
        max_fraction: Remove at most this fraction of any one group.
        bins: Per-width fractions, see :class:`filterprune.select.Selection`.
        leaf_types: Extra module types to treat as opaque leaves.
        graph: A graph from :func:`analyze` of this model as it is now (skips re-tracing).
        **criterion_context: Passed to data-driven criteria (``batches``, ``loss_fn``, ...).

    Returns:
        The :class:`Plan` that was applied, in the model's numbering before this call.
    """
    selection = Selection(
        amount=amount,
        scope=scope,
        round_to=round_to,
        min_channels=min_channels,
        max_fraction=max_fraction,
        bins=tuple(bins),
    )
    crit = get_criterion(criterion)
    if graph is None:
        graph = analyze(model, example_inputs, ignore=ignore, leaf_types=leaf_types)
    scores = crit(graph, model=model, example_inputs=example_inputs, **criterion_context)
    removed = select(graph, scores, selection)
    plan = graph.plan(removed)
    apply_plan(model, plan)
    return plan


def count(model: nn.Module, example_inputs: Any) -> Any:
    """Parameters and MACs of ``model`` (see :func:`filterprune.report.count`)."""
    from .report.counting import count as _count

    return _count(model, example_inputs)


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["analyze", "apply_plan", "count", "inspect", "param_count", "prune"]
