"""Moved: targets live in :mod:`filterprune.config.target` (this name still imports them)."""

from ..config.target import *  # noqa: F403
from ..config.target import __all__  # noqa: F401
