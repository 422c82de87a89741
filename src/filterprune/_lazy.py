"""Package faces that load their modules on first use (PEP 562).

A face lists each name it exports with the module that defines it; ``import package`` then loads
none of them, and ``package.name`` imports its module once and caches the value::

    __getattr__, __dir__ = lazy_face(__name__, {"count": ".counting", ...})
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_face"]


def lazy_face(
    package: str, homes: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: ``homes`` maps a name to its module
    (relative to ``package``, such as ``".counting"``, or absolute); a home ending in ``:`` names
    a subpackage, loaded as the attribute itself."""

    def getattr_(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        if home.endswith(":"):
            value = importlib.import_module(home[:-1], package)
        else:
            value = getattr(importlib.import_module(home, package), name)
        setattr(sys.modules[package], name, value)  # later lookups skip this function
        return value

    def dir_() -> list[str]:
        return sorted({*vars(sys.modules[package]), *homes})

    return getattr_, dir_
