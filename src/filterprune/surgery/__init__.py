"""Surgery: physically remove channels from modules, in one pass."""

from .apply import apply_plan

__all__ = ["apply_plan"]
