"""The Python API: inspect a model, prune it, count it."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from ._gc import gc_paused
from .choose import match_modules, select, unselected_layers
from .config.ranking import Ranking
from .config.recipe import data_free_criterion, resolve_scope
from .config.selection import Selection
from .criteria import get_criterion
from .criteria.regularize import channel_costs, l2_normalize, regularize
from .errors import FilterpruneError
from .graph.groups import DependencyGraph
from .graph.tracer import trace
from .layer_probe import freeze_computed_weights
from .measure.counting import count
from .measure.counting import count_params as param_count
from .plan import Plan
from .probe import needs_probe, verify
from .surgery import apply_plan

Ignore = Iterable[str | nn.Module | type]

logger = logging.getLogger(__name__)


def _ignored_names(model: nn.Module, ignore: Ignore | None) -> tuple[str, ...]:
    if not ignore:
        return ()
    return tuple(
        match_modules(
            dict(model.named_modules()),
            ignore,
            unmatched=lambda item: (
                f"ignore pattern {item!r} matches no module of {type(model).__name__}; "
                "use names as printed by model.named_modules()"
            ),
        )
    )


def analyze(
    model: nn.Module,
    example_inputs: Any,
    *,
    ignore: Ignore | None = None,
    leaf_types: Sequence[type] = (),
    probe: bool = True,
    grouped: str = "within",
    heads: str = "whole",
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
            Layers that compute their weight from the stored one (weight standardisation,
            weight or spectral norm, a subclass's own ``forward``) are each pruned as a copy
            too, and channels whose removal changes the kept weights are kept (see
            :mod:`filterprune.layer_probe`).
        grouped: How grouped convs (ResNeXt, RegNet) and GroupNorm lose channels:
            ``"within"`` (default) removes the same channels inside every group and keeps the
            group count, so a 30 % amount removes about 30 % of them; ``"whole"`` removes
            whole groups only (fewer groups, each as wide as before). Depthwise convs always
            lose whole groups (each group holds one input channel).
        heads: How attention heads lose channels: ``"whole"`` (default) removes whole heads,
            with their q, k, v and output-projection channels, and lowers the module's head
            count; ``"dims"`` shrinks every head alike (see :mod:`filterprune.graph.heads`).
    """
    leaf_types = tuple(leaf_types)
    names = _ignored_names(model, ignore)
    start = time.perf_counter()
    with gc_paused():
        tracer = trace(model, example_inputs, leaf_types=leaf_types, grouped=grouped, heads=heads)
        graph = DependencyGraph(model, tracer, ignore=names)
        if probe:
            freeze_computed_weights(model, graph)
        if probe and needs_probe(graph):
            verify(model, example_inputs, graph, leaf_types)
    logger.debug(
        "analyzed %s: %d groups, %d prunable, in %.2f s",
        type(model).__name__,
        len(graph.groups),
        len(graph.prunable),
        time.perf_counter() - start,
    )
    return graph


class Inspection:
    """What :func:`inspect` returns: the report as its ``str`` and ``repr``, the graph inside.

    ``print(fp.inspect(model, x))`` prints the report once; in a REPL or notebook the bare call
    shows it. Attributes of the :class:`DependencyGraph` (``groups``, ``prunable``, ...) read
    through, and ``.graph`` is the graph itself.
    """

    def __init__(self, graph: DependencyGraph) -> None:
        self.graph = graph

    def __getattr__(self, name: str) -> Any:
        return getattr(self.graph, name)

    def __str__(self) -> str:
        return self.graph.report()

    __repr__ = __str__

    @property
    def attention(self) -> list[dict[str, Any]]:
        """Every group of attention heads: its name, head count, head dimension (channels of
        one head's q, k or v as traced), the count attributes that follow it and, if frozen, why.
        """
        return [
            {
                "group": g.name,
                "heads": g.size,
                "head_dim": g.head_size,
                "counts": g.heads,
                "frozen": list(g.reasons),
            }
            for g in self.graph.groups
            if g.heads
        ]


def inspect(model: nn.Module, example_inputs: Any, **options: Any) -> Inspection:
    """The prunability report of ``model`` (see :func:`analyze`): every channel group, its
    layers, and why frozen ones stay.

    Nothing is printed: ``print(fp.inspect(model, x))`` shows the report (a REPL shows the
    returned value by itself). The result reads like the graph (``.groups``, ``.frozen``).
    """
    return Inspection(analyze(model, example_inputs, **options))


class RankingMemoryError(FilterpruneError, torch.OutOfMemoryError):
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
    ranking: Ranking | None = None,
    criterion: str | Any = None,
    normalize: bool | None = None,
    flops_reg: float | None = None,
    cost: str | None = None,
    criterion_options: dict[str, Any] | None = None,
    selection: Selection | None = None,
    graph: DependencyGraph | None = None,
    **context: Any,
) -> dict[str, torch.Tensor]:
    """Score every channel of every prunable group; lower scores are removed first.

    Args:
        model: The model to rank (not modified; no optimizer step, ``.grad`` untouched).
        example_inputs: Inputs for tracing (a batch of 1 is enough).
        batches: Iterable of ``(inputs, targets)`` for data-driven criteria.
        loss_fn: ``loss_fn(outputs, targets) -> scalar``; or pass ``step_fn(model, batch)``.
        ranking: The criterion and its corrections as one :class:`~filterprune.Ranking`; the
            flat keywords below override its fields. Unset, they are the default recipe's
            (Taylor, normalised, ``flops_reg=0.1`` on MACs; see
            :mod:`filterprune.config.recipe`); without ``batches``, ``loss_fn`` or ``step_fn``
            an unset criterion is ``"l1"``.
        criterion: A registered criterion name or a criterion object.
        normalize: Per-group L2 normalisation (Molchanov et al. 2017); default on.
        flops_reg: ``lambda`` of the cost regularisation (``1e-3`` in the paper; default 0.1;
            0 = off).
        cost: ``"flops"`` (default), ``"params"``, ``"memory"`` or ``"latency"`` (each layer's
            forward timed on this machine at the batch size of ``example_inputs``): what
            ``flops_reg`` charges.
        criterion_options: Keyword arguments for the criterion's constructor.
        selection: What will be removed (:class:`~filterprune.Selection`), for criteria whose
            scores depend on it (``kmeans`` keeps ``1 - selection.fraction_for(n)`` per group).
        graph: A graph of this model from :func:`analyze` (skips tracing).
        **context: Extra inputs for the criterion (``step_fn``, ``max_batches``, ``device``...).

    Returns:
        Group name (the first producing layer, e.g. ``features.0``) -> 1-D tensor with one score
        per channel, in that layer's current channel order.
    """
    has_data = batches is not None or loss_fn is not None or "step_fn" in context
    criterion = data_free_criterion(ranking, criterion, has_data)
    ranking = Ranking.merged(
        ranking,
        criterion=criterion,
        normalize=normalize,
        flops_reg=flops_reg,
        cost=cost,
        options=criterion_options,
    )
    crit = get_criterion(ranking.criterion, **ranking.options)
    if graph is None:
        graph = analyze(model, example_inputs)
    if batches is not None and ranking.batches is not None:
        batches = itertools.islice(batches, ranking.batches)
    failure = None
    try:
        scores = crit(
            graph,
            model=model,
            example_inputs=example_inputs,
            batches=batches,
            loss_fn=loss_fn,
            selection=selection,
            **context,
        )
    except (RuntimeError, MemoryError) as exc:
        if not _out_of_memory(exc):
            raise
        failure = " ".join(str(exc).split()[:40])  # raised below, once the tensors are freed
    if failure is not None:
        name = ranking.criterion if isinstance(ranking.criterion, str) else type(crit).__name__
        raise RankingMemoryError(
            f"out of memory while ranking with criterion {name!r} ({failure}); rank with fewer "
            "or smaller batches: lower ranking_batches (--ranking-batches) or the batch size "
            "(--batch-size), or use a data-free criterion such as 'l1'"
        )
    if ranking.normalize:
        scores = l2_normalize(scores)
    if ranking.flops_reg:
        scores = regularize(
            scores, channel_costs(graph, example_inputs, ranking.cost), ranking.flops_reg
        )
    return scores


def prune(
    model: nn.Module,
    example_inputs: Any,
    *,
    selection: Selection | None = None,
    ranking: Ranking | None = None,
    amount: float | None = None,
    criterion: str | Any = None,
    ignore: Ignore | None = None,
    scope: str | None = None,
    round_to: int | None = None,
    widths: str | None = None,
    min_channels: int | None = None,
    max_fraction: float | None = None,
    bins: Sequence[tuple[int, float]] | None = None,
    layer_types: Sequence[str] | None = None,
    leaf_types: Sequence[type] = (),
    grouped: str | None = None,
    heads: str = "whole",
    graph: DependencyGraph | None = None,
    normalize: bool | None = None,
    flops_reg: float | None = None,
    cost: str | None = None,
    criterion_options: dict[str, Any] | None = None,
    scores_out: dict[str, torch.Tensor] | None = None,
    width_chooser: Any = None,
    **criterion_context: Any,
) -> Plan:
    """Remove ``amount`` of the channels of ``model`` in place, lowest-scored first.

    What to remove and how to score it can be given as two objects, ``selection`` and
    ``ranking``, or as flat keywords (``amount=0.3, criterion="l1"``); flat keywords override
    the objects' fields. Unset, they are the default recipe's, as for every entry point
    (:mod:`filterprune.config.recipe`): 10 % of the convolution filters, ranked globally by
    normalised Taylor scores minus 0.1 times their MAC cost, at most 25 % of any layer. Taylor
    needs data (``batches`` and ``loss_fn``, or ``step_fn``); without it an unset criterion is
    ``"l1"``.

    Args:
        model: The model to prune, in place. Rebuild optimizers afterwards.
        example_inputs: A tensor or tuple of inputs the model accepts.
        selection: How many channels go, under which limits, from which layers.
        ranking: Which criterion scores them, with which corrections.
        amount: Fraction of all prunable channels to remove (``scope="global"``, the default)
            or of each group's (``scope="per_group"``); or an int: that many channels.
        criterion: A registered criterion name (see ``filterprune.list_criteria()``) or object.
        ignore: Modules whose output channels must stay (names, patterns, objects or types).
        scope: ``"global"`` (default) or ``"per_group"`` (which turns the default cost term off).
        round_to: Keep a multiple of this many channels per group.
        widths: ``"any"`` (default) or ``"measured"``: move each pruned group's width to the
            widest of the fastest widths near the ranking's choice, timed on this machine at the
            batch size of ``example_inputs`` (see :class:`filterprune.Selection`).
        min_channels: Keep at least this many channels per group.
        max_fraction: A global ranking removes at most this fraction of any one group
            (default: 2.5 times ``amount``, at most 1).
        bins: Per-width fractions, see :class:`filterprune.Selection`.
        layer_types: Only prune layers of these class names; ``()`` every layer. Default
            ``("conv",)``: every convolution (all layers of a model without one).
        leaf_types: Extra module types to treat as opaque leaves.
        grouped: ``"within"`` (default) or ``"whole"``: how grouped convs lose channels (see
            :func:`analyze`; a ``graph`` given keeps the mode it was analysed with).
        graph: A graph from :func:`analyze` of this model as it is now (skips re-tracing); it is
            updated in place to follow the removal, so it can be passed again next iteration.
        normalize, flops_reg, cost: See :func:`rank` (they matter for ``scope="global"``).
        criterion_options: Keyword arguments for the criterion's constructor.
        scores_out: A dict that receives the scores the selection used (as :func:`rank`
            returns them: group name -> 1-D tensor, in the numbering before this call), e.g.
            to report score distributions without ranking twice.
        width_chooser: With ``widths="measured"``, the chooser to use (a
            :class:`filterprune.measure.staircase.StaircaseWidths`, e.g. to time at another batch
            size or share its table across calls); default: one timing ``example_inputs``.
        **criterion_context: Passed to data-driven criteria (``batches``, ``loss_fn``, ...).

    Returns:
        The :class:`Plan` that was applied, in the model's numbering before this call.
    """
    selection = Selection.merged(
        selection,
        amount=amount,
        scope=scope,
        round_to=round_to,
        widths=widths,
        min_channels=min_channels,
        max_fraction=max_fraction,
        bins=None if bins is None else tuple(bins),
        layer_types=None if layer_types is None else tuple(layer_types),
        grouped=grouped,
    )
    has_data = any(criterion_context.get(k) is not None for k in ("batches", "loss_fn", "step_fn"))
    ranking = Ranking.merged(
        ranking,
        criterion=data_free_criterion(ranking, criterion, has_data),
        normalize=normalize,
        flops_reg=flops_reg,
        cost=cost,
        options=criterion_options,
    )
    selection, ranking = resolve_scope(selection, ranking)
    unselected = unselected_layers(model, selection)
    if graph is None:
        names = _ignored_names(model, ignore) + tuple(unselected)
        graph = analyze(
            model,
            example_inputs,
            ignore=names,
            leaf_types=leaf_types,
            grouped=selection.grouped,
            heads=heads,
        )
    scores = rank(
        model,
        example_inputs,
        ranking=ranking,
        graph=graph,
        selection=selection,
        **criterion_context,
    )
    if unselected:  # a graph given from outside may hold groups the layer filters leave out
        left_out = set(unselected)
        kept = {g.name for g in graph.prunable if not left_out & set(g.producers)}
        scores = {name: s for name, s in scores.items() if name in kept}
    if scores_out is not None:
        scores_out.update(scores)
    with gc_paused():
        if selection.widths == "measured" and width_chooser is None:
            from .measure.staircase import StaircaseWidths

            width_chooser = StaircaseWidths(model, example_inputs)
        chooser = width_chooser if selection.widths == "measured" else None
        removed = select(graph, scores, selection, widths=chooser)
        if chooser is not None:
            chooser.save()
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
