"""How many channels go, under which limits, and from which layers: :class:`Selection`.

:func:`filterprune.prune` takes it (or its fields as flat keywords); the loop's
:class:`~filterprune.config.Removal` is a Selection with a schedule; criteria receive it as
``selection=`` (KMeans keeps ``1 - selection.fraction_for(n)`` of a group of ``n``). Its
defaults are the default recipe's (:mod:`filterprune.config.recipe`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from . import recipe
from .base import Default, SettingsData, fail, is_int, is_number, strings

__all__ = ["GROUPED", "LAYER_FILTERS", "SCOPES", "WIDTHS", "Selection", "round_up"]

SCOPES = ("per_group", "global")
WIDTHS = ("any", "measured")
#: How grouped convs lose channels (the tracer's ``grouped`` modes, ``graph.tracer.GROUPED``).
GROUPED = ("within", "whole")
LAYER_FILTERS = ("include", "exclude", "layer_types", "layers")


def round_up(x: int, multiple: int) -> int:
    """``x`` rounded up to a multiple of ``multiple`` (``round_to``)."""
    return x if multiple <= 1 else int(math.ceil(x / multiple) * multiple)


def _recipe_scope(selection: Selection) -> str:
    """The recipe's global ranking, or per group when per-width ``bins`` say each group's share."""
    return "per_group" if selection.bins else recipe.SCOPE


def _recipe_layer_types(selection: Selection) -> tuple[str, ...]:
    """The recipe's ``("conv",)``, unless ``include`` or ``layers`` choose the layers."""
    return () if selection.include or selection.layers else recipe.LAYER_TYPES


@dataclass(frozen=True)
class Selection(SettingsData):
    """How many channels to remove, under which limits, and from which layers.

    The defaults are the default recipe's (see :mod:`filterprune.config.recipe`).

    Attributes:
        amount: A fraction in ``[0, 1)`` of the channels to remove, or an int: that many
            channels, ranked globally. Default 0.1.
        scope: ``"global"`` (default) removes ``amount`` of all prunable channels, lowest scores
            first across groups (scores normalised per layer, as the default ranking does);
            ``"per_group"`` (the default with ``bins``) removes ``amount`` of every group. ``None`` (older configs): global
            for counts and with a cost term, else per group.
        min_channels: Never keep fewer channels than this in a group.
        max_fraction: A global ranking removes at most this fraction of any one group.
            ``None`` (default): 2.5 times the share the step removes, at most 1 (0.25 at the
            default amount 0.1), so that one step cannot empty a small layer.
        round_to: Keep a multiple of this many channels per group.
        widths: ``"any"`` (default): every width the ranking and ``round_to`` leave;
            ``"measured"``: each pruned group's width moves (by at most 12.5 %) to the widest
            of the fastest widths on its layers' measured latency staircase
            (:mod:`filterprune.measure.staircase`). A run whose target is latency measures
            them unless ``round_to`` or ``widths`` is given.
        bins: Optional per-width fractions, ``((max_width, fraction), ...)`` ascending: a group of
            ``n`` channels uses the fraction of the first bin with ``n <= max_width`` (per-group
            scope; Ridurre's bins).
        include: Only prune layers whose module name matches one of these fnmatch patterns.
        exclude: Never prune layers matching these patterns.
        layer_types: Only prune layers of these class names (e.g. ``"Conv2d"``). ``"conv"``
            stands for every convolution (any ``torch.nn`` conv class or subclass); a model
            without convolutions then prunes all its layers. Default: ``("conv",)``, or none
            when ``include`` or ``layers`` choose the layers.
        layers: Only prune exactly these layers (module names).
        grouped: How grouped convs (ResNeXt, RegNet) and GroupNorm lose channels: ``"within"``
            (default) the same channels inside every group, so the group count stays;
            ``"whole"``: whole groups. Depthwise convs always lose whole groups. The measured
            speed and accuracy behind the default are in docs/benchmarks.md ("Within-group or
            whole groups by default").
    """

    amount: float | int = recipe.AMOUNT
    scope: str | None = Default(derive=_recipe_scope)  # type: ignore[assignment]
    min_channels: int = 1
    max_fraction: float | None = None
    round_to: int = 1
    widths: str = Default("any")  # type: ignore[assignment]
    bins: tuple[tuple[int, float], ...] = ()
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    layer_types: tuple[str, ...] = Default(derive=_recipe_layer_types)  # type: ignore[assignment]
    layers: tuple[str, ...] = ()
    grouped: str = recipe.GROUPED

    def __post_init__(self) -> None:
        for name in LAYER_FILTERS:  # before the derived default reads them
            value = getattr(self, name)
            if not isinstance(value, Default):
                object.__setattr__(self, name, strings(self._owner, name, value))
        self._fill_defaults()
        own = self._owner
        self._check_amount("amount", self.amount)
        if self.scope is not None and self.scope not in SCOPES:
            fail(own, "scope", self.scope, f"need one of {SCOPES} or None")
        if self.bins and self.scope == "global":
            fail(
                own,
                "scope",
                self.scope,
                "per-width bins give each group its share: need 'per_group'",
            )
        if self.scope == "per_group" and any(is_int(a) for a in self.amounts):
            fail(
                own,
                "scope",
                self.scope,
                "a channel-count amount is ranked globally; use scope 'global', or give "
                "amount as a fraction such as 0.1",
            )
        for name in ("min_channels", "round_to"):
            if not is_int(getattr(self, name)) or getattr(self, name) < 1:
                fail(own, name, getattr(self, name), "need an int >= 1")
        if self.grouped not in GROUPED:
            fail(own, "grouped", self.grouped, f"need one of {GROUPED}")
        if self.widths not in WIDTHS:
            fail(own, "widths", self.widths, f"need one of {WIDTHS}")
        if self.widths == "measured" and self.round_to > 1:
            fail(
                own,
                "widths",
                self.widths,
                f"round_to={self.round_to} fixes the widths to its multiples; give one of them",
            )
        if self.max_fraction is not None and (
            not is_number(self.max_fraction) or not 0.0 < self.max_fraction <= 1.0
        ):
            fail(
                own,
                "max_fraction",
                self.max_fraction,
                "need a fraction in (0, 1] of a layer's channels (1.0 = no cap), or None "
                "(2.5 times the step's share)",
            )
        bins = []
        for item in self.bins:
            width, frac = item if isinstance(item, list | tuple) and len(item) == 2 else (0, -1)
            if not is_int(width) or width < 1 or not is_number(frac) or not 0.0 <= frac < 1.0:
                fail(own, "bins", item, "need (max_width >= 1, fraction in [0, 1)) pairs")
            bins.append((width, float(frac)))
        object.__setattr__(self, "bins", tuple(bins))

    @property
    def _owner(self) -> str:
        return type(self).__name__

    def _check_amount(self, name: str, value: Any) -> None:
        """A fraction in [0, 1) of the channels, or an int channel count >= 1."""
        if is_int(value):
            if value < 1:
                fail(self._owner, name, value, "a channel count must be an int >= 1")
        elif not is_number(value) or not 0.0 <= value < 1.0:
            fail(
                self._owner,
                name,
                value,
                "need a fraction in [0, 1) (e.g. 0.1) or an int channel count (e.g. 8)",
            )

    @property
    def amounts(self) -> tuple[float | int, ...]:
        """The amounts that may be used (one here; a :class:`Removal` may have a schedule)."""
        return (self.amount,)

    @property
    def filters_layers(self) -> bool:
        """Whether any layer filter (include, exclude, layer_types, layers) is set."""
        return any(getattr(self, name) for name in LAYER_FILTERS)

    def fraction_for(self, n: int) -> float:
        """The fraction to remove from a group of ``n`` channels (its bin's, else ``amount``)."""
        for width, frac in self.bins:
            if n <= width:
                return frac
        if is_int(self.amount):
            raise ConfigError(
                f"{self._owner}.amount: a channel count ({self.amount}) has no per-group "
                "fraction; give amount as a fraction such as 0.1 for this criterion"
            )
        return self.amount

    def removed_for(self, n: int) -> int:
        """How many of a group of ``n`` units a per-group selection removes: at least its share
        (:meth:`fraction_for`), in whole units: 30 % of 4 heads is two, of 64 channels twenty,
        of 8 channels per conv group three. A user asking for 30 % never gets less in a group.
        """
        return math.ceil(n * self.fraction_for(n) - 1e-9)

    def layer_fraction(self, step_fraction: float) -> float:
        """The most a global step removing ``step_fraction`` may take from one layer."""
        if self.max_fraction is not None:
            return self.max_fraction
        return recipe.layer_cap(step_fraction)

    def max_removable(self, n: int, cap: float = 1.0) -> int:
        """Most channels removable from a group of ``n`` under ``min_channels``, ``round_to``
        and a per-layer ``cap`` (a fraction)."""
        keep = max(self.min_channels, n - math.floor(n * cap + 1e-9))
        keep = min(n, round_up(keep, self.round_to))
        return max(0, n - keep)
