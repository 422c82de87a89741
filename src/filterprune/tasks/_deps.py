"""Lazy imports of the optional ``data`` and ``progress`` extras.

numpy, Pillow and scikit-learn are optional: ``import filterprune.tasks`` never imports them.
Functions that need one call :func:`require` at run time.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator
from types import ModuleType
from typing import TypeVar

from filterprune._progress import progress

from ..errors import MissingDependencyError

T = TypeVar("T")

_PIP_NAMES = {"numpy": "numpy", "PIL": "pillow", "sklearn": "scikit-learn"}


def require(module: str, *, feature: str) -> ModuleType:
    """Import an optional dependency of the ``data`` extra.

    Args:
        module: Importable module name, e.g. ``"PIL.Image"`` or ``"sklearn.datasets"``.
        feature: What needs it, used in the error message (e.g. ``"ImageFolderDataset"``).

    Returns:
        The imported module.

    Raises:
        ImportError: If the module is missing; the message says how to install it.
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        top = module.split(".")[0]
        pip_name = _PIP_NAMES.get(top, top)
        raise MissingDependencyError(
            f"{feature} needs the optional package {pip_name!r}, which is not installed. "
            "Install it with: pip install filterprune[data]"
        ) from err


def progress_bar(
    iterable: Iterable[T], *, enabled: bool, total: int | None = None, desc: str = ""
) -> Iterator[T]:
    """Wrap ``iterable`` in a tqdm bar when ``enabled``, on a terminal, with tqdm installed.

    See :mod:`filterprune._progress`: no bar (and no carriage returns) in logs and CI output.
    """
    return iter(progress(iterable, enabled=enabled, total=total, desc=desc))
