"""Checks of numeric settings: finite, and inside a sane range (ground floor: imports only errors).

``nan`` passes every ``<``/``>`` test, and a huge value such as ``1e308`` passes a ``> 0`` test
and then overflows inside torch (``value cannot be converted to type float without overflow``)
or is blamed on another setting. Every float setting of filterprune (a command-line flag or a
config field) goes through :func:`check_real`, which refuses both, naming the setting.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import ConfigError

__all__ = ["HUGE", "check_real", "describe_range", "real_problem"]

#: The largest magnitude any float setting may have when it has no narrower range of its own.
#: Far above every sensible value (a learning rate of 1e30 already diverges at the first step),
#: and far below float32's largest (3.4e38), so that torch never overflows converting it.
HUGE = 1e30


def describe_range(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    """``(0, 1e+30]``-style text of a range."""
    left = "(" if low_open else "["
    right = ")" if high_open else "]"
    lo = "-1e+30" if low is None else f"{low:g}"
    hi = "1e+30" if high is None else f"{high:g}"
    return f"{left}{lo}, {hi}{right}"


def real_problem(
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> str | None:
    """Why ``value`` is not a finite number in the range, or ``None`` if it is.

    ``low``/``high`` ``None`` mean ``-HUGE``/``HUGE`` (closed).
    """
    need = f"need a finite number in {describe_range(low, high, low_open, high_open)}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return need
    if not math.isfinite(value):
        return need
    lo = -HUGE if low is None else low
    hi = HUGE if high is None else high
    below = value <= lo if low_open else value < lo
    above = value >= hi if high_open else value > hi
    return need if below or above else None


def check_real(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    hint: str = "",
) -> float:
    """``value`` as a float if finite and in range, else :class:`ConfigError` naming ``name``.

    Args:
        name: The setting as the user wrote it, e.g. ``"--lr"`` or ``"FinetuneConfig.lr"``.
        hint: Appended to the message, e.g. ``"; e.g. 0.01"``.
    """
    problem = real_problem(value, low=low, high=high, low_open=low_open, high_open=high_open)
    if problem is not None:
        raise ConfigError(f"{name}: {problem}, got {value!r}{hint}")
    return float(value)
