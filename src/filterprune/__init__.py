"""filterprune: remove whole filters from trained CNNs and get a smaller, faster, plain model.

Quick use::

    import filterprune as fp
    fp.inspect(model, example)                       # what can be pruned, and why not
    plan = fp.prune(model, example, amount=0.3)      # in place; returns the plan
    fp.apply_plan(fresh_model, fp.Plan.from_json(plan.to_json()))  # rebuild the architecture
"""

from . import distributed
from ._version import __version__
from .api import analyze, count, inspect, param_count, prune, rank
from .criteria import (
    criterion_from_removals,
    criterion_from_scores,
    get_criterion,
    list_criteria,
    register_criterion,
)
from .graph import DependencyGraph, TraceError, register_layer, register_leaf
from .loop import PruneConfig, load, run_pruning, save
from .plan import Plan, PlanError
from .select import Selection
from .surgery import apply_plan

__all__ = [
    "DependencyGraph",
    "Plan",
    "PlanError",
    "PruneConfig",
    "Selection",
    "TraceError",
    "__version__",
    "analyze",
    "apply_plan",
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
