"""filterprune: remove whole filters from trained CNNs and get a smaller, faster, plain model.

Quick use::

    import filterprune as fp
    print(fp.inspect(model, example))                # what can be pruned, and why not
    plan = fp.prune(model, example, amount=0.3)      # in place; returns the plan
    fp.apply_plan(fresh_model, fp.Plan.from_json(plan.to_json()))  # rebuild the architecture

``import filterprune`` loads only the core (tracing, criteria, selection, surgery and the verbs
above). The loop (``PruneConfig``, ``run_pruning``, ``load``, ``save``), ``distributed`` and the
packages ``models``, ``tasks``, ``report``, ``recipes``, ``cli`` load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .api import analyze, count, inspect, param_count, prune, rank
from .criteria import (
    criterion_from_removals,
    criterion_from_scores,
    get_criterion,
    list_criteria,
    register_criterion,
)
from .errors import (
    AllocationError,
    CheckpointError,
    ConfigError,
    DataError,
    FilterpruneError,
    MissingDependencyError,
    MissingFileError,
    NonFiniteError,
    RunLockedError,
    SetupError,
    StorageError,
    UnknownNameError,
    UnreadableFileError,
)
from .graph import DependencyGraph, TraceError, register_layer, register_leaf
from .plan import Plan, PlanError
from .settings import Ranking, Selection
from .surgery import apply_plan, fold_computed_weights

if TYPE_CHECKING:  # for type checkers and IDEs; at run time these load on first use
    from . import cli as cli
    from . import distributed as distributed
    from . import loop as loop
    from . import models as models
    from . import recipes as recipes
    from . import report as report
    from . import tasks as tasks
    from .loop import PruneConfig as PruneConfig
    from .loop import run_pruning as run_pruning
    from .store.load import load as load
    from .store.load import save as save

# name -> module that defines it, imported on first access (PEP 562)
_LAZY = {
    "PruneConfig": "filterprune.loop",
    "load": "filterprune.store.load",
    "run_pruning": "filterprune.loop",
    "save": "filterprune.store.load",
}
_LAZY_MODULES = ("cli", "distributed", "loop", "models", "recipes", "report", "tasks")


def __getattr__(name: str) -> Any:
    if name in _LAZY_MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, *_LAZY_MODULES})


__all__ = [
    "AllocationError",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "FilterpruneError",
    "MissingDependencyError",
    "MissingFileError",
    "NonFiniteError",
    "RunLockedError",
    "SetupError",
    "StorageError",
    "UnknownNameError",
    "UnreadableFileError",
    "DependencyGraph",
    "Plan",
    "PlanError",
    "PruneConfig",
    "Ranking",
    "Selection",
    "TraceError",
    "__version__",
    "analyze",
    "apply_plan",
    "fold_computed_weights",
    "count",
    "distributed",
    "criterion_from_removals",
    "criterion_from_scores",
    "get_criterion",
    "inspect",
    "list_criteria",
    "load",
    "param_count",
    "prune",
    "rank",
    "register_criterion",
    "register_layer",
    "register_leaf",
    "run_pruning",
    "save",
]
