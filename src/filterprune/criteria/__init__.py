"""Importance criteria: score each channel of each group; the lowest are removed first.

Registered names: ``taylor`` (Molchanov 2017, the default data criterion), ``weight_taylor`` and
``bn_gate_taylor`` (Molchanov 2019), ``l1``, ``l2``, ``bn_scale``, ``mean_activation``, ``apoz``,
``kmeans`` and ``random``; plus any you register.
"""

from . import activation, gradients, kmeans, taylor, weights  # noqa: F401  (registration)
from .custom import criterion_from_removals, criterion_from_scores
from .registry import Criterion, Scores, get_criterion, list_criteria, register_criterion

__all__ = [
    "Criterion",
    "Scores",
    "criterion_from_removals",
    "criterion_from_scores",
    "get_criterion",
    "list_criteria",
    "register_criterion",
]
