"""Every setting of filterprune, and the default recipe, in one package.

* :class:`Selection` and :class:`Ranking`: what one pruning step removes and how it scores,
  the objects :func:`filterprune.prune` and :func:`filterprune.rank` take;
* :class:`PruneConfig` and its sections (:class:`Removal`, :class:`Finetuning`,
  :class:`Stopping`, :class:`Target`): an iterative run;
* :mod:`filterprune.config.recipe`: the default recipe every entry point starts from.
"""

from __future__ import annotations

from ..errors import ConfigError
from .prune import (
    DEFAULT_RANKING_BATCHES,
    FLAT,
    RESUMABLE_CHANGES,
    TOP_LEVEL,
    PruneConfig,
    flat_names,
)
from .ranking import Ranking
from .recipe import RECIPE
from .sections import (
    DEFAULT_FINAL_FINETUNE,
    DEFAULT_FINETUNE,
    DEFAULT_MAX_ITERATIONS,
    Budget,
    Finetuning,
    Removal,
    Stopping,
)
from .selection import SCOPES, Selection
from .target import QUANTITIES, Target

__all__ = [
    "DEFAULT_FINAL_FINETUNE",
    "DEFAULT_FINETUNE",
    "DEFAULT_MAX_ITERATIONS",
    "DEFAULT_RANKING_BATCHES",
    "FLAT",
    "QUANTITIES",
    "RECIPE",
    "RESUMABLE_CHANGES",
    "SCOPES",
    "TOP_LEVEL",
    "Budget",
    "ConfigError",
    "Finetuning",
    "PruneConfig",
    "Ranking",
    "Removal",
    "Selection",
    "Stopping",
    "Target",
    "flat_names",
]
