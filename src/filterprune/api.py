"""The Python API: inspect a model, prune it, count it."""

from __future__ import annotations

import fnmatch
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from ._gc import gc_paused
from .criteria import get_criterion
from .criteria.regularize import channel_costs, l2_normalize, regularize
from .graph.groups import DependencyGraph
from .graph.tracer import trace
from .measure.counting import count
from .measure.counting import count_params as param_count
from .plan import Plan
from .probe import MAX_ROUNDS, freeze_op, needs_probe, probe_once
from .select import Selection, select
from .surgery import apply_plan

Ignore = Iterable[str | nn.Module | type]

logger = logging.getLogger(__name__)


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
        probe: Check the analysis by pruning a copy (see :mod:`filterprune.probe`). It is
            skipped when the model has nothing it could find (see ``needs_probe`` there).
    """
    leaf_types = tuple(leaf_types)
    names = _ignored_names(model, ignore)
    start = time.perf_counter()
    with gc_paused():
        tracer = trace(model, example_inputs, leaf_types=leaf_types)
        graph = DependencyGraph(model, tracer, ignore=names)
        if probe and needs_probe(graph):
            for _ in range(MAX_ROUNDS):
                bad = probe_once(model, example_inputs, graph, leaf_types)
                if bad is None:
                    break
                freeze_op(graph, bad)
                graph.groups = graph._build()
    logger.debug(
        "analyzed %s: %d groups, %d prunable, in %.2f s",
        type(model).__name__,
        len(graph.groups),
        len(graph.prunable),
        time.perf_counter() - start,
    )
    return graph


def inspect(model: nn.Module, example_inputs: Any, **options: Any) -> DependencyGraph:
    """Print and return the prunability report of ``model`` (see :func:`analyze`)."""
    graph = analyze(model, example_inputs, **options)
    print(graph.report())
    return graph


class RankingMemoryError(torch.OutOfMemoryError):
    """Ranking ran out of (device) memory; the message says how to rank with less."""


def _out_of_memory(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, torch.OutOfMemoryError | MemoryError) or (
        isinstance(exc, RuntimeError)
        and ("out of memory" in text or "can't allocate memory" in text)
    )


def rank(
    model: nn.Module,
    example_inputs: Any,
    *,
    batches: Iterable[Any] | None = None,
    loss_fn: Any = None,
    criterion: str | Any = "taylor",
    normalize: bool = True,
    flops_reg: float = 0.0,
    cost: str = "flops",
    graph: DependencyGraph | None = None,
    criterion_options: dict[str, Any] | None = None,
    **context: Any,
) -> dict[str, torch.Tensor]:
    """Score every channel of every prunable group; lower scores are removed first.

    Args:
        model: The model to rank (not modified; no optimizer step, ``.grad`` untouched).
        example_inputs: Inputs for tracing (a batch of 1 is enough).
        batches: Iterable of ``(inputs, targets)`` for data-driven criteria.
        loss_fn: ``loss_fn(outputs, targets) -> scalar``; or pass ``step_fn(model, batch)``.
        criterion: A registered criterion name or a criterion object.
        normalize: Per-group L2 normalisation (Molchanov et al. 2017).
        flops_reg: ``lambda`` of the cost regularisation (``1e-3`` in the paper; 0 = off).
        cost: ``"flops"``, ``"params"``, ``"memory"`` or ``"latency"`` (each layer's forward
            timed on this machine at the batch size of ``example_inputs``): what ``flops_reg``
            charges.
        graph: A graph of this model from :func:`analyze` (skips tracing).
        criterion_options: Keyword arguments for the criterion's constructor.
        **context: Extra inputs for the criterion (``step_fn``, ``max_batches``, ``device``...).

    Returns:
        Group name (the first producing layer, e.g. ``features.0``) -> 1-D tensor with one score
        per channel, in that layer's current channel order.
    """
    crit = get_criterion(criterion, **(criterion_options or {}))
    if graph is None:
        graph = analyze(model, example_inputs)
    failure = None
    try:
        scores = crit(
            graph,
            model=model,
            example_inputs=example_inputs,
            batches=batches,
            loss_fn=loss_fn,
            **context,
        )
    except (RuntimeError, MemoryError) as exc:
        if not _out_of_memory(exc):
            raise
        failure = " ".join(str(exc).split()[:40])  # raised below, once the tensors are freed
    if failure is not None:
        name = criterion if isinstance(criterion, str) else type(crit).__name__
        raise RankingMemoryError(
            f"out of memory while ranking with criterion {name!r} ({failure}); rank with fewer "
            "or smaller batches: lower ranking_batches (--ranking-batches) or the batch size "
            "(--batch-size), or use a data-free criterion such as 'l1'"
        )
    if normalize:
        scores = l2_normalize(scores)
    if flops_reg:
        scores = regularize(scores, channel_costs(graph, example_inputs, cost), flops_reg)
    return scores


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
    normalize: bool = True,
    flops_reg: float = 0.0,
    cost: str = "flops",
    criterion_options: dict[str, Any] | None = None,
    scores_out: dict[str, torch.Tensor] | None = None,
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
        graph: A graph from :func:`analyze` of this model as it is now (skips re-tracing); it is
            updated in place to follow the removal, so it can be passed again next iteration.
        normalize, flops_reg, cost: See :func:`rank` (they matter for ``scope="global"``).
        criterion_options: Keyword arguments for the criterion's constructor.
        scores_out: A dict that receives the scores the selection used (as :func:`rank`
            returns them: group name -> 1-D tensor, in the numbering before this call), e.g.
            to report score distributions without ranking twice.
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
    if graph is None:
        graph = analyze(model, example_inputs, ignore=ignore, leaf_types=leaf_types)
    scores = rank(
        model,
        example_inputs,
        criterion=criterion,
        normalize=normalize,
        flops_reg=flops_reg,
        cost=cost,
        graph=graph,
        criterion_options=criterion_options,
        amount=amount,
        **criterion_context,
    )
    if scores_out is not None:
        scores_out.update(scores)
    with gc_paused():
        removed = select(graph, scores, selection)
        plan = graph.plan(removed)
        apply_plan(model, plan)
        graph.update(plan)
    return plan


__all__ = [
    "RankingMemoryError",
    "analyze",
    "apply_plan",
    "count",
    "inspect",
    "param_count",
    "prune",
    "rank",
]
