"""Which criterion scores the channels, and how its scores are corrected: :class:`Ranking`.

:func:`filterprune.prune` and :func:`filterprune.rank` take it (or its fields as flat
keywords), and so does :class:`~filterprune.PruneConfig`. Its defaults are the default recipe's
(:mod:`filterprune.config.recipe`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..measure.costs import LAYER_COSTS
from . import recipe
from .base import Default, SettingsData, fail, is_int, is_number

__all__ = ["MAX_FLOPS_REG", "Ranking"]

#: The largest cost-regularisation lambda: costs and normalised scores are in [0, 1], so far
#: below this the cost term alone already decides the ranking.
MAX_FLOPS_REG = 1000.0


@dataclass(frozen=True)
class Ranking(SettingsData):
    """Which criterion scores the channels, and how its scores are corrected.

    The defaults are the default recipe's (see :mod:`filterprune.config.recipe`).

    Attributes:
        criterion: A registered criterion name (``filterprune.list_criteria()``); a criterion
            object also works in Python, but does not round-trip through JSON. Default
            ``"taylor"`` (``"l1"`` where :func:`filterprune.prune` is given no data).
        options: Keyword options for the criterion's constructor.
        normalize: Per-group L2 normalisation of the scores (Molchanov et al. 2017); it makes
            one global ranking fair across layers. Default on.
        flops_reg: Cost regularisation ``lambda`` (1e-3 in the paper; 0 = off): channels of
            expensive layers go first at equal importance. Default 0.1; a per-group scope turns
            the default off (and refuses one that was set).
        cost: What ``flops_reg`` charges: ``"flops"`` (default; ``"latency"`` in a run whose
            target is latency), ``"params"``, ``"memory"`` or ``"latency"`` (each layer's
            forward timed on this machine at the example batch).
        batches: How many batches a data-driven criterion reads (``None``: all it is given;
            the loop reads 10).
    """

    criterion: Any = Default(recipe.CRITERION)
    options: Mapping[str, Any] = field(default_factory=dict)
    normalize: bool = recipe.NORMALIZE
    flops_reg: float = Default(recipe.FLOPS_REG)  # type: ignore[assignment]
    cost: str = Default(recipe.COST)  # type: ignore[assignment]
    batches: int | None = None

    def __post_init__(self) -> None:
        self._fill_defaults()
        own = "Ranking"
        if isinstance(self.criterion, str):
            if not self.criterion:
                fail(own, "criterion", self.criterion, "need a name such as 'l1' or 'taylor'")
        elif not callable(self.criterion):
            fail(own, "criterion", self.criterion, "need a criterion name or object")
        if not isinstance(self.options, Mapping):
            fail(own, "options", self.options, "need a dict of keyword options")
        object.__setattr__(self, "options", dict(self.options))
        if not isinstance(self.normalize, bool):
            fail(own, "normalize", self.normalize, "need true or false")
        if not is_number(self.flops_reg) or not 0 <= self.flops_reg <= MAX_FLOPS_REG:
            fail(
                own,
                "flops_reg",
                self.flops_reg,
                f"need a number in [0, {MAX_FLOPS_REG:g}] (1e-3 in the paper, "
                f"{recipe.FLOPS_REG:g} the default)",
            )
        if self.cost not in LAYER_COSTS:
            fail(own, "cost", self.cost, f"need one of {LAYER_COSTS}")
        if self.batches is not None and (not is_int(self.batches) or self.batches < 0):
            fail(own, "batches", self.batches, "need an int >= 0 or None")

    def to_dict(self) -> dict[str, Any]:
        if not isinstance(self.criterion, str):
            raise ConfigError(
                f"Ranking.criterion: a criterion object ({type(self.criterion).__name__}) cannot "
                "be written as JSON; register it (filterprune.register_criterion) and use its name"
            )
        return super().to_dict()
