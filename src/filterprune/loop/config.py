"""Moved: the run's configuration lives in :mod:`filterprune.config` (this name still imports it)."""

from ..config import *  # noqa: F403
from ..config import __all__  # noqa: F401
from ..config.prune import READABLE_FORMATS, SECTIONS  # noqa: F401
