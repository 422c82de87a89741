"""Progress bars only where someone watches them: on a terminal (or in a notebook).

Every long loop in filterprune goes through :func:`progress`. A bar redraws its line with carriage
returns, which turns a log file or CI output into noise; so when standard error is not a
terminal no bar is drawn at all, and the loops' ``logging`` lines (one per pruning iteration) are
the record. ``FILTERPRUNE_PROGRESS=1`` forces bars, ``=0`` turns them off. tqdm is optional
(``pip install filterprune[progress]``); without it there are no bars.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

__all__ = ["bars_wanted", "progress"]

T = TypeVar("T")


def bars_wanted() -> bool:
    """Whether a progress bar may be drawn now: standard error is a terminal, or a notebook runs.

    ``FILTERPRUNE_PROGRESS=1`` / ``0`` overrides the check.
    """
    forced = os.environ.get("FILTERPRUNE_PROGRESS", "").strip().lower()
    if forced in ("1", "true", "yes", "on"):
        return True
    if forced in ("0", "false", "no", "off"):
        return False
    stream = sys.stderr
    try:
        if stream is not None and stream.isatty():
            return True
    except (AttributeError, ValueError):  # closed or replaced stream
        return False
    return "ipykernel" in sys.modules


class _NoBar:
    """What :func:`progress` returns when no bar is drawn: the same methods, doing nothing."""

    def __init__(self, iterable: Iterable[Any] | None) -> None:
        self._iterable = iterable

    def __iter__(self) -> Iterator[Any]:
        return iter(self._iterable if self._iterable is not None else ())

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


def progress(
    iterable: Iterable[T] | None = None,
    *,
    enabled: bool = True,
    total: int | float | None = None,
    desc: str = "",
    unit: str = "it",
    initial: int = 0,
) -> Any:
    """A tqdm bar over ``iterable`` (or a manual one with ``update``), or a silent stand-in.

    The bar is drawn only when ``enabled``, tqdm is installed and :func:`bars_wanted` holds; it is
    removed when done (``leave=False``). Either way the result iterates like ``iterable`` and has
    ``update``, ``set_postfix`` and ``close``.
    """
    if enabled and bars_wanted():
        try:
            from tqdm.auto import tqdm
        except ImportError:
            pass
        else:
            return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, leave=False)
    return _NoBar(iterable)
