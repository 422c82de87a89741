"""Importance criteria: score each channel of each group; the lowest are removed first."""

from . import weights  # noqa: F401  (registers the weight criteria)
from .registry import Criterion, Scores, get_criterion, list_criteria, register_criterion

__all__ = ["Criterion", "Scores", "get_criterion", "list_criteria", "register_criterion"]
