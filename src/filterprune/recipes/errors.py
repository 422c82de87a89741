"""Errors of the recipes package."""

from __future__ import annotations

from ..errors import FilterpruneError

__all__ = ["RecipeError"]


class RecipeError(FilterpruneError, ValueError):
    """A workflow input is wrong (a data folder, a channel file, ...); the message says the fix.

    Messages name the option as its command-line flag (``--data``), the spelling most users see;
    the Python keyword of the recipe has the same name without dashes.
    """
