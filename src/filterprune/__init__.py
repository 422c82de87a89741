"""filterprune: remove whole filters from trained CNNs and get a smaller, faster, plain model.

Quick use::

    import filterprune as fp
    print(fp.inspect(model, example))                # what can be pruned, and why not
    plan = fp.prune(model, example, amount=0.3)      # in place; returns the plan
    fp.apply_plan(fresh_model, fp.Plan.from_json(plan.to_json()))  # rebuild the architecture

``import filterprune`` loads its version and its errors only; every other name loads its module
on first use (``fp.prune`` the core: tracing, criteria, selection, surgery; ``fp.run_pruning``
the loop; ``fp.report`` the reports), so a script that prunes never loads latency timing, the
process-group code or the CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_face
from ._version import __version__
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

if TYPE_CHECKING:  # for type checkers and IDEs; at run time every name loads on first use
    from . import cli as cli
    from . import config as config
    from . import distributed as distributed
    from . import loop as loop
    from . import models as models
    from . import recipes as recipes
    from . import report as report
    from . import tasks as tasks
    from .api import analyze, count, inspect, param_count, prune, rank
    from .config import PruneConfig, Ranking, Selection
    from .criteria import (
        criterion_from_removals,
        criterion_from_scores,
        get_criterion,
        list_criteria,
        register_criterion,
    )
    from .graph import DependencyGraph, TraceError, register_layer, register_leaf
    from .loop import run_pruning
    from .plan import Plan, PlanError
    from .store.load import load, save
    from .surgery import apply_plan, fold_computed_weights

# name -> module that defines it, imported on first access; a trailing ":" names a package
_HOMES = {
    **dict.fromkeys(("analyze", "count", "inspect", "param_count", "prune", "rank"), ".api"),
    **dict.fromkeys(("PruneConfig", "Ranking", "Selection"), ".config"),
    **dict.fromkeys(
        (
            "criterion_from_removals",
            "criterion_from_scores",
            "get_criterion",
            "list_criteria",
            "register_criterion",
        ),
        ".criteria",
    ),
    **dict.fromkeys(("DependencyGraph", "TraceError", "register_layer", "register_leaf"), ".graph"),
    **dict.fromkeys(("Plan", "PlanError"), ".plan"),
    **dict.fromkeys(("apply_plan", "fold_computed_weights"), ".surgery"),
    **dict.fromkeys(("load", "save"), ".store.load"),
    "run_pruning": ".loop",
    **{
        name: f".{name}:"
        for name in ("cli", "config", "distributed", "loop", "models", "recipes", "report", "tasks")
    },
}
__getattr__, __dir__ = lazy_face(__name__, _HOMES)

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
