"""The default recipe: what every entry point does with nothing else set, defined here once.

The CLI (``filterprune prune``), :class:`~filterprune.PruneConfig`, :func:`filterprune.prune`,
:func:`filterprune.rank` and the Lightning callback take their defaults from the constants below,
through the defaults of :class:`~filterprune.Ranking`, :class:`~filterprune.Selection` and the
sections of :class:`~filterprune.PruneConfig`:

* Taylor scores (Molchanov et al. 2017), L2-normalised per layer;
* ranked globally, minus ``FLOPS_REG`` times each channel's MAC cost (scaled to [0, 1]), so
  that channels of expensive layers go first at equal importance;
* ``AMOUNT`` (10 %) of the prunable channels per step, at most ``LAYER_CAP_FACTOR`` times the
  step's share of any one layer (25 % at 10 %), so that one step cannot empty a small layer;
* convolution filters only (``"conv"``): a hidden Linear costs few MACs, and a global ranking
  would otherwise spend the budget on it. A model without convolutions prunes all its layers;
* grouped convs lose the same channels inside every group (``GROUPED = "within"``), so each
  layer keeps its group count and the grouped kernel it was written for.

docs/benchmarks.md ("Fashion-MNIST") holds the comparison these values come from.

These rules adapt the recipe to what else is set, and live here:

* :func:`data_free_criterion`: :func:`filterprune.prune` and :func:`filterprune.rank` called
  without data (no ``batches``, ``step_fn`` or ``loss_fn``) cannot compute Taylor scores; with the
  criterion left unset they use ``"l1"`` (the recipe's one departure, logged);
* :func:`resolve_scope`: a cost term only reorders a global ranking. A per-group scope turns the
  recipe's default cost term off; a cost term the user set with a per-group scope is refused;
* :func:`resolve_cost`: a run whose target is latency charges each channel its layer's measured
  forward time (``cost="latency"``) instead of its MACs, unless ``cost`` was set.
* :func:`resolve_widths`: a run whose target is latency chooses widths on measured latency
  staircases (``widths="measured"``), unless ``widths`` or ``round_to`` was set.
* :func:`resolve_task`: ``filterprune prune`` of a segmentation or detection model
  (:data:`UNCHARGED_TASKS`) ranks without the MAC cost term unless ``flops_reg`` was set: the
  term takes full-resolution channels first, which those outputs need (docs/benchmarks.md,
  "Fashion-MNIST canvases": without it, test mAP higher on every seed at -50 % and -75 % MACs,
  Dice at -75 %, a tie at -90 %).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError

__all__ = [
    "AMOUNT",
    "COST",
    "CRITERION",
    "DATA_FREE_CRITERION",
    "FLOPS_REG",
    "GROUPED",
    "LAYER_CAP_FACTOR",
    "LAYER_TYPES",
    "NORMALIZE",
    "RECIPE",
    "UNCHARGED_TASKS",
    "SCOPE",
    "data_free_criterion",
    "resolve_cost",
    "resolve_widths",
    "resolve_scope",
    "resolve_task",
]

logger = logging.getLogger("filterprune")

CRITERION = "taylor"
NORMALIZE = True
SCOPE = "global"
FLOPS_REG = 0.1
COST = "flops"
AMOUNT = 0.1
#: A global step removes at most this many times its share from any one layer (capped at 1).
LAYER_CAP_FACTOR = 2.5
#: ``layer_types`` alias: every convolution (``torch.nn.modules.conv._ConvNd`` and subclasses).
CONV = "conv"
LAYER_TYPES = (CONV,)
GROUPED = "within"
#: Tasks whose ranking has no MAC cost term by default (dense outputs: masks, boxes).
UNCHARGED_TASKS = ("segment", "detect")
#: What :func:`filterprune.prune`/:func:`filterprune.rank` score with when given no data.
DATA_FREE_CRITERION = "l1"

#: The recipe by flat setting name (as :class:`~filterprune.PruneConfig` and the CLI name them).
RECIPE: Mapping[str, Any] = {
    "criterion": CRITERION,
    "normalize": NORMALIZE,
    "scope": SCOPE,
    "flops_reg": FLOPS_REG,
    "cost": COST,
    "amount": AMOUNT,
    "max_layer_fraction": None,
    "layer_types": LAYER_TYPES,
}


def layer_cap(fraction: float) -> float:
    """The default per-layer cap of a global step removing ``fraction`` of the channels."""
    return min(1.0, LAYER_CAP_FACTOR * fraction)


def data_free_criterion(ranking: Any, criterion: Any, has_data: bool) -> Any:
    """The criterion to use when the caller left it unset: the recipe's, or without data ``l1``."""
    if criterion is not None or (ranking is not None and not ranking.is_default("criterion")):
        return criterion
    if has_data:
        return None
    logger.info(
        "no ranking data (batches, step_fn or loss_fn) given: scoring with %r instead of the "
        "recipe's %r; pass batches and loss_fn for Taylor scores",
        DATA_FREE_CRITERION,
        CRITERION,
    )
    return DATA_FREE_CRITERION


def resolve_scope(selection: Any, ranking: Any, *, owner: str = "Selection") -> tuple[Any, Any]:
    """A :class:`~filterprune.Selection` with a concrete scope, and a
    :class:`~filterprune.Ranking` whose cost term can act.

    ``scope=None`` (older configs) ranks globally when an amount is a channel count or the
    ranking has a cost term, per group otherwise. A per-group scope turns a default cost term
    off; one the user set is refused, since per group it would change nothing.
    """
    scope = selection.scope
    if scope is None:
        counts = any(isinstance(a, int) and not isinstance(a, bool) for a in selection.amounts)
        scope = "global" if counts or ranking.flops_reg > 0 else "per_group"
        selection = selection.replace(scope=scope)
    if scope == "per_group" and ranking.flops_reg > 0:
        if not ranking.is_default("flops_reg"):
            raise ConfigError(
                f"{owner}.scope: 'per_group' with flops_reg={ranking.flops_reg:g}: a cost term "
                "reorders channels across layers and does nothing when each group loses its own "
                "fraction; use scope 'global' or flops_reg 0"
            )
        ranking = ranking.replace(flops_reg=0.0)
    return selection, ranking


def _wants_time(targets: Any) -> bool:
    """Whether any target is latency."""
    return any(getattr(t, "quantity", None) == "latency" for t in targets)


def resolve_cost(ranking: Any, targets: Any) -> Any:
    """``ranking`` charging measured layer latency when a target is latency and ``cost`` was
    left at the recipe's ``"flops"``: MACs are a poor proxy for time (docs/benchmarks.md)."""
    if _wants_time(targets) and ranking.is_default("cost") and ranking.flops_reg > 0:
        return ranking.replace(cost="latency")
    return ranking


def resolve_widths(removal: Any, targets: Any) -> Any:
    """``removal`` choosing widths on measured latency staircases when a target is latency and
    neither ``widths`` nor ``round_to`` was given: one global multiple fits no machine's blocks
    at every layer and batch size (docs/benchmarks.md, "Widths the hardware likes")."""
    if _wants_time(targets) and removal.is_default("widths") and removal.round_to == 1:
        return removal.replace(widths="measured")
    return removal


def resolve_task(ranking: Any, task: str | None, targets: Any = ()) -> Any:
    """``ranking`` without the MAC cost term for a task of :data:`UNCHARGED_TASKS` when
    ``flops_reg`` was left at the recipe's and no target is latency (whose cost term charges
    time, not MACs).

    Charged with its MACs, a full-resolution channel goes before a deeper one of equal
    importance; a mask or a box needs those channels. Measured on the Fashion-MNIST canvases
    (docs/benchmarks.md): at the same MAC targets, Taylor without the term kept higher test
    Dice (U-Net, -75 %; a tie at -90 %) and mAP (the YOLO-style detector, -50 % and -75 %) on
    every seed.
    """
    if task in UNCHARGED_TASKS and ranking.is_default("flops_reg") and not _wants_time(targets):
        logger.info(
            "task %r: ranking without the MAC cost term (flops_reg 0), the recipe for dense "
            "outputs; --flops-reg sets one",
            task,
        )
        return ranking.replace(flops_reg=0.0)
    return ranking
