"""Moved: the sections of a run's configuration live in :mod:`filterprune.config.sections`."""

from ..config.sections import *  # noqa: F403
from ..config.sections import __all__  # noqa: F401
