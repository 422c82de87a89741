"""Size and speed targets of a pruning run: MACs, parameters, checkpoint size or latency.

A target is met when the current model's value is at most ``at_most`` (absolute, in the
quantity's unit) or at least ``reduction`` below the original model's value.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

__all__ = ["QUANTITIES", "Target"]

QUANTITIES = {"macs": "MACs", "params": "parameters", "size": "MB", "latency": "ms"}
_SUFFIX = {"": 1.0, "K": 1e3, "M": 1e6, "G": 1e9}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Target:
    """A goal on MACs, parameters, checkpoint size (MB) or latency (ms); the run stops once met.

    Give either ``reduction`` (a fraction of the original value to remove, e.g. 0.5 halves MACs)
    or ``at_most`` (an absolute ceiling in the quantity's unit, see ``QUANTITIES``).
    """

    quantity: str
    reduction: float | None = None
    at_most: float | None = None

    def __post_init__(self) -> None:
        if self.quantity not in QUANTITIES:
            raise ConfigError(
                f"target: unknown quantity {self.quantity!r}; choose one of {', '.join(QUANTITIES)}"
            )
        if (self.reduction is None) == (self.at_most is None):
            raise ConfigError(
                f"target {self.quantity!r}: give exactly one of reduction (e.g. 0.5) or at_most "
                f"(e.g. 2.5e6), got reduction={self.reduction!r}, at_most={self.at_most!r}"
            )
        if self.reduction is not None and not (
            _is_number(self.reduction) and 0.0 < self.reduction < 1.0
        ):
            raise ConfigError(
                f"target {self.quantity!r}: reduction must be a fraction in (0, 1), got "
                f"{self.reduction!r}; 0.5 means 'remove half'"
            )
        if self.at_most is not None and not (_is_number(self.at_most) and self.at_most > 0):
            raise ConfigError(
                f"target {self.quantity!r}: at_most must be a number > 0 "
                f"({QUANTITIES[self.quantity]}), got {self.at_most!r}"
            )

    def reached(self, original: float, current: float) -> bool:
        """Whether ``current`` meets the target, given the ``original`` model's value."""
        if self.at_most is not None:
            return current <= self.at_most
        return current <= original * (1.0 - self.reduction) + 1e-12 * abs(original)

    def __str__(self) -> str:
        if self.reduction is not None:
            return f"{self.quantity}=-{self.reduction * 100:g}%"
        return f"{self.quantity}<={self.at_most:g}"

    @classmethod
    def parse(cls, text: str) -> Target:
        """Parse ``"macs=-50%"`` (reduce by 50 %) or ``"macs<=2.5M"`` / ``"size<=1.2"`` (absolute).

        Counts accept K/M/G suffixes; size is in MB, latency in ms.
        """
        match = re.fullmatch(r"\s*(\w+)\s*(=-|<=)\s*([0-9.eE+]+)\s*([%KMG]?)\s*", text)
        signless = re.fullmatch(r"\s*(\w+)\s*=\s*\+?\s*([0-9.eE+]+)\s*%\s*", text)
        if match is None and signless is not None:  # latency=50%: the minus sign left out
            name, number = signless.groups()
            raise ConfigError(
                f"target {text!r}: a reduction is written with a minus sign, {name}=-{number}% "
                f"({name} {number} % below the original's); for an absolute bound write "
                f"{name}<=VALUE"
            )
        if match is None:
            raise ConfigError(
                f"target {text!r} is not understood; write QUANTITY=-PERCENT% (e.g. macs=-50%) "
                f"or QUANTITY<=VALUE (e.g. params<=1.5M, size<=2, latency<=10); quantities: "
                f"{', '.join(QUANTITIES)}"
            )
        name, op, number, suffix = match.groups()
        try:
            value = float(number)
        except ValueError:
            raise ConfigError(f"target {text!r}: {number!r} is not a number") from None
        if op == "=-":
            if suffix != "%":
                raise ConfigError(
                    f"target {text!r}: a reduction needs a percent sign, e.g. macs=-50%"
                )
            if not 0.0 < value < 100.0:
                raise ConfigError(
                    f"target {text!r}: a reduction is a percent between 0 and 100, both "
                    f"excluded, got {number}%; e.g. {name}=-50% ("
                    + ("a 2x speed-up)" if name == "latency" else "half the original's)")
                )
            return cls(name, reduction=value / 100.0)
        if suffix == "%":
            raise ConfigError(f"target {text!r}: use QUANTITY=-P% for a reduction, not <=P%")
        return cls(name, at_most=value * _SUFFIX[suffix])

    def to_dict(self) -> dict[str, Any]:
        return {"quantity": self.quantity, "reduction": self.reduction, "at_most": self.at_most}
