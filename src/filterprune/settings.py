"""Moved: :class:`Selection` and :class:`Ranking` live in :mod:`filterprune.config` (this name
still imports them)."""

from .config.ranking import Ranking
from .config.selection import SCOPES, Selection
from .errors import ConfigError

__all__ = ["SCOPES", "ConfigError", "Ranking", "Selection"]
