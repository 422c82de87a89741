"""Surgery: physically remove channels from modules, in one pass."""

from .apply import apply_plan
from .fold import fold_computed_weights

__all__ = ["apply_plan", "fold_computed_weights"]
