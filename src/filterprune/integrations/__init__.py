"""filterprune inside other training frameworks. Each integration needs its framework installed.

* :mod:`filterprune.integrations.lightning`: :class:`FilterPruning`, a callback for a
  ``lightning.Trainer`` (``pip install filterprune[lightning]``).

Importing this package imports no framework; the names below load their module on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "FilterPruning": "lightning",
    "apply_checkpoint_plan": "lightning",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
    return getattr(module, name)
