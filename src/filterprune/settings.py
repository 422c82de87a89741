"""What to remove and how to score it, as two small dataclasses that check themselves.

* :class:`Selection`: how many channels go, under which limits, from which layers;
* :class:`Ranking`: which criterion scores the channels, with which options and corrections.

:func:`filterprune.prune` takes both (or their fields as flat keywords); the loop's
:class:`~filterprune.loop.PruneConfig` builds them for every iteration; criteria receive the
selection as ``selection=`` (KMeans keeps ``1 - selection.fraction_for(n)`` of a group of ``n``).
Both round-trip through JSON (:meth:`Selection.to_dict` / :meth:`Selection.from_dict`, the same
for :class:`Ranking`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, NoReturn, TypeVar

from ._numbers import HUGE
from .errors import ConfigError
from .measure.costs import LAYER_COSTS

__all__ = ["SCOPES", "ConfigError", "Ranking", "Selection"]

SCOPES = ("per_group", "global")
LAYER_FILTERS = ("include", "exclude", "layer_types", "layers")
#: The largest cost-regularisation lambda: costs and normalised scores are in [0, 1], so far
#: below this the cost term alone already decides the ranking.
MAX_FLOPS_REG = 1000.0

S = TypeVar("S", bound="SettingsData")


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A finite int or float of magnitude at most :data:`filterprune._numbers.HUGE`."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    return math.isfinite(value) and abs(value) <= HUGE


def fail(owner: str, name: str, value: Any, need: str) -> NoReturn:
    raise ConfigError(f"{owner}.{name}: {need}, got {value!r}")


def strings(owner: str, name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        fail(owner, name, value, "need a list of non-empty strings")
    if not all(isinstance(v, str) and v for v in value):
        fail(owner, name, value, "need a list of non-empty strings")
    return tuple(value)


class SettingsData:
    """JSON round trip shared by the settings dataclasses (fields are JSON values or tuples).

    ``is_int``, ``is_number``, ``fail`` and ``strings`` are the checks they share (also used by
    the sections of :class:`filterprune.loop.PruneConfig`).
    """

    def to_dict(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            if isinstance(value, tuple):
                return [plain(v) for v in value]
            if isinstance(value, Mapping):
                return {k: plain(v) for k, v in value.items()}
            return value

        return {f.name: plain(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls: type[S], data: Any, *, source: str | None = None) -> S:
        """Build from a dict as :meth:`to_dict` writes it; missing keys take their defaults."""
        where = source or cls.__name__
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: expected a JSON object, got {type(data).__name__}")
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(f"{where}: unknown keys {unknown}; known keys: {', '.join(known)}")
        try:
            return cls(**data)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}" if source else str(exc)) from None

    @classmethod
    def from_json(cls: type[S], text: str, *, source: str | None = None) -> S:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{source or cls.__name__}: not valid JSON ({exc})") from None
        return cls.from_dict(data, source=source)

    def replace(self: S, **changes: Any) -> S:
        """A copy with ``changes`` applied (checked again)."""
        return replace(self, **changes)

    @classmethod
    def merged(cls: type[S], given: S | None, **flat: Any) -> S:
        """``given`` (or the defaults) with the flat keywords that were passed (not ``None``).

        How the Python entry points (``prune``, ``rank``, the Lightning callback) take either
        the object or its fields as keywords, the keywords overriding the object.
        """
        changes = {k: v for k, v in flat.items() if v is not None}
        if given is None:
            return cls(**changes)
        if not isinstance(given, cls):
            raise TypeError(f"need a filterprune.{cls.__name__}, got {type(given).__name__}")
        return given.replace(**changes) if changes else given


@dataclass(frozen=True)
class Selection(SettingsData):
    """How many channels to remove, under which limits, and from which layers.

    Attributes:
        amount: Fraction of channels to remove, in ``[0, 1)``.
        scope: ``"per_group"`` removes ``amount`` of every group; ``"global"`` removes ``amount``
            of all prunable channels, lowest scores first across groups (scores should be
            normalised per layer for this to be fair).
        min_channels: Never keep fewer channels than this in a group.
        max_fraction: Never remove more than this fraction of one group (global scope).
        round_to: Keep a multiple of this many channels per group (hardware-friendly widths).
        bins: Optional per-width fractions, ``((max_width, fraction), ...)`` ascending: a group of
            ``n`` channels uses the fraction of the first bin with ``n <= max_width`` (per-group
            scope; Ridurre's bins).
        include: Only prune layers whose module name matches one of these fnmatch patterns.
        exclude: Never prune layers matching these patterns.
        layer_types: Only prune layers of these class names (e.g. ``"Conv2d"``).
        layers: Only prune exactly these layers (module names).
    """

    amount: float = 0.3
    scope: str = "per_group"
    min_channels: int = 1
    max_fraction: float = 1.0
    round_to: int = 1
    bins: tuple[tuple[int, float], ...] = ()
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    layer_types: tuple[str, ...] = ()
    layers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        own = "Selection"
        if not is_number(self.amount) or not 0.0 <= self.amount < 1.0:
            fail(own, "amount", self.amount, "need a fraction in [0, 1) of the channels to remove")
        if self.scope not in SCOPES:
            fail(own, "scope", self.scope, f"need one of {SCOPES}")
        for name in ("min_channels", "round_to"):
            if not is_int(getattr(self, name)) or getattr(self, name) < 1:
                fail(own, name, getattr(self, name), "need an int >= 1")
        if not is_number(self.max_fraction) or not 0.0 < self.max_fraction <= 1.0:
            fail(own, "max_fraction", self.max_fraction, "need a fraction in (0, 1]")
        bins = []
        for item in self.bins:
            width, frac = item if isinstance(item, list | tuple) and len(item) == 2 else (0, -1)
            if not is_int(width) or width < 1 or not is_number(frac) or not 0.0 <= frac < 1.0:
                fail(own, "bins", item, "need (max_width >= 1, fraction in [0, 1)) pairs")
            bins.append((width, float(frac)))
        object.__setattr__(self, "bins", tuple(bins))
        for name in LAYER_FILTERS:
            object.__setattr__(self, name, strings(own, name, getattr(self, name)))

    @property
    def filters_layers(self) -> bool:
        """Whether any layer filter (include, exclude, layer_types, layers) is set."""
        return any(getattr(self, name) for name in LAYER_FILTERS)

    def fraction_for(self, n: int) -> float:
        """The fraction to remove from a group of ``n`` channels (its bin's, else ``amount``)."""
        for width, frac in self.bins:
            if n <= width:
                return frac
        return self.amount

    def max_removable(self, n: int) -> int:
        """Most channels removable from a group of ``n``, honouring min_channels/round_to."""
        keep = max(self.min_channels, n - math.floor(n * self.max_fraction + 1e-9))
        keep = min(n, _round_up(keep, self.round_to))
        return max(0, n - keep)


def _round_up(x: int, multiple: int) -> int:
    return x if multiple <= 1 else int(math.ceil(x / multiple) * multiple)


@dataclass(frozen=True)
class Ranking(SettingsData):
    """Which criterion scores the channels, and how its scores are corrected.

    Attributes:
        criterion: A registered criterion name (``filterprune.list_criteria()``); a criterion
            object also works in Python, but does not round-trip through JSON.
        options: Keyword options for the criterion's constructor.
        normalize: Per-group L2 normalisation of the scores (Molchanov et al. 2017); it makes
            one global ranking fair across layers.
        flops_reg: Cost regularisation ``lambda`` (1e-3 in the paper; 0 = off): channels of
            expensive layers go first at equal importance.
        cost: What ``flops_reg`` charges: ``"flops"``, ``"params"``, ``"memory"`` or
            ``"latency"`` (each layer's forward timed on this machine at the example batch).
        batches: How many batches a data-driven criterion reads (``None``: all it is given).
    """

    criterion: Any = "l1"
    options: Mapping[str, Any] = field(default_factory=dict)
    normalize: bool = True
    flops_reg: float = 0.0
    cost: str = "flops"
    batches: int | None = None

    def __post_init__(self) -> None:
        own = "Ranking"
        if isinstance(self.criterion, str):
            if not self.criterion:
                fail(own, "criterion", self.criterion, "need a name such as 'l1' or 'taylor'")
        elif not callable(self.criterion):
            fail(own, "criterion", self.criterion, "need a criterion name or object")
        if not isinstance(self.options, Mapping):
            fail(own, "options", self.options, "need a dict of keyword options")
        object.__setattr__(self, "options", dict(self.options))
        if not isinstance(self.normalize, bool):
            fail(own, "normalize", self.normalize, "need true or false")
        if not is_number(self.flops_reg) or not 0 <= self.flops_reg <= MAX_FLOPS_REG:
            fail(
                own,
                "flops_reg",
                self.flops_reg,
                f"need a number in [0, {MAX_FLOPS_REG:g}] (1e-3 in the paper, 0.1 the default)",
            )
        if self.cost not in LAYER_COSTS:
            fail(own, "cost", self.cost, f"need one of {LAYER_COSTS}")
        if self.batches is not None and (not is_int(self.batches) or self.batches < 0):
            fail(own, "batches", self.batches, "need an int >= 0 or None")

    def to_dict(self) -> dict[str, Any]:
        if not isinstance(self.criterion, str):
            raise ConfigError(
                f"Ranking.criterion: a criterion object ({type(self.criterion).__name__}) cannot "
                "be written as JSON; register it (filterprune.register_criterion) and use its name"
            )
        return super().to_dict()
