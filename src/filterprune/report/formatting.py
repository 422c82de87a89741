"""Display formatting of raw table values, shared by the table builders and renderers."""

from __future__ import annotations

from numbers import Real
from typing import Any

from ..errors import ConfigError

__all__ = ["KINDS", "NUMERIC_KINDS", "format_value"]

NUMERIC_KINDS = ("int", "count", "mb", "ms", "percent", "speedup", "metric", "delta")
KINDS = ("text", *NUMERIC_KINDS)


def _human_count(value: float) -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {suffix}"
    return f"{value:g}"


_FORMATS = {
    "int": lambda v: str(v) if isinstance(v, int) else f"{v:g}",
    "count": _human_count,
    "mb": lambda v: f"{v:.2f}",
    "ms": lambda v: f"{v:.2f}" if abs(v) >= 1 else f"{v:.3g}",
    "percent": lambda v: f"{v:.1f}",
    "speedup": lambda v: f"{v:.2f}x",
    "metric": lambda v: f"{v:.4g}",
    "delta": lambda v: f"{v:+.4g}",
}


def format_value(value: Any, kind: str) -> str:
    """Format one raw value for display.

    Args:
        value: A number, text or ``None``.
        kind: One of ``KINDS``. ``count`` prints K/M/G with two decimals (MACs, params), ``mb``
            two decimals, ``ms`` two decimals (three significant digits below 1 ms),
            ``percent`` one decimal, ``speedup`` a trailing "x", ``metric`` four significant
            digits, ``delta`` the same with a sign.

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
