"""Display formatting of raw table values, shared by the table builders and renderers."""

from __future__ import annotations

import re
from collections.abc import Iterable
from numbers import Real
from typing import Any

from ..errors import ConfigError

__all__ = ["KINDS", "NUMERIC_KINDS", "format_value", "metric_kinds", "plural"]

NUMERIC_KINDS = (
    "int",
    "count",
    "mb",
    "ms",
    "percent",
    "speedup",
    "metric",
    "delta",
    "fraction",
    "points",
)
KINDS = ("text", *NUMERIC_KINDS)

# Metrics that are shares of the data (accuracy, top-k accuracy, Dice, IoU, mAP, ...): shown in
# percent, and their changes in percentage points.
FRACTION_METRICS = re.compile(
    r"(.*_)?(acc|accuracy|top\d+|top\d+_acc|dice|iou|miou|f1|precision|recall|map|map\d+)(_.*)?",
    re.IGNORECASE,
)


def _human_count(value: float) -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {suffix}"
    return f"{value:g}"


_FORMATS = {
    "int": lambda v: str(v) if isinstance(v, int) else f"{v:g}",
    "count": _human_count,
    "mb": lambda v: f"{v:.2f}" if abs(v) >= 1 else f"{v:.3g}",
    "ms": lambda v: f"{v:.2f}" if abs(v) >= 1 else f"{v:.3g}",
    "percent": lambda v: f"{v:.1f}",
    "speedup": lambda v: f"{v:.2f}x",
    "metric": lambda v: f"{v:.4g}",
    "delta": lambda v: f"{v:+.4g}",
    "fraction": lambda v: f"{v * 100:.2f} %",
    "points": lambda v: f"{v * 100:+.2f} pt",
}


def metric_kinds(name: str, values: Iterable[Any]) -> tuple[str, str]:
    """Display kinds of a metric and of its change: ``("fraction", "points")`` or not.

    A metric is a fraction when its name says so (accuracy, top5, dice, iou, map, map50, ...; see
    ``FRACTION_METRICS``) and every value lies in ``[0, 1]``: it prints as ``97.12 %`` and a
    change as ``+0.38 pt`` (percentage points). Any other metric (a loss, an accuracy already in
    percent) prints with four significant digits and a change with its sign.
    """
    numbers = [v for v in values if isinstance(v, Real) and not isinstance(v, bool)]
    if FRACTION_METRICS.fullmatch(name) and numbers and all(0 <= v <= 1 for v in numbers):
        return "fraction", "points"
    return "metric", "delta"


def format_value(value: Any, kind: str) -> str:
    """Format one raw value for display.

    Args:
        value: A number, text or ``None``.
        kind: One of ``KINDS``. ``count`` prints K/M/G with two decimals (MACs, params),
            ``mb`` and ``ms`` two decimals (three significant digits below 1, so a small model
            is not 0.00), ``percent`` one decimal, ``speedup`` a trailing "x", ``metric`` four
            significant digits, ``delta`` the same with a sign, ``fraction`` a share in percent
            (``0.9712`` -> ``97.12 %``), ``points`` a change of a share in percentage points
            (``0.0038`` -> ``+0.38 pt``).

    Returns:
        The text; ``"N/A"`` for ``None``; ``str(value)`` for text and non-numbers.
    """
    if kind not in KINDS:
        raise ConfigError(f"format_value: unknown kind {kind!r}; known: {KINDS}")
    if value is None:
        return "N/A"
    if kind == "text" or isinstance(value, bool) or not isinstance(value, Real):
        return str(value)
    return _FORMATS[kind](value)


def plural(count: Any, noun: str) -> str:
    """``count`` and ``noun`` in the right number: ``1 epoch``, ``2 epochs``, ``0 rounds``.

    ``noun`` is the singular (a plural ending in ``s`` is taken back first, so a unit stored as
    ``"epochs"`` works too). A count that is not a number (``None``, ``"?"``) keeps the plural.
    """
    singular = noun.removesuffix("s")
    one = isinstance(count, Real) and not isinstance(count, bool) and count == 1
    return f"{count} {singular if one else singular + 's'}"
