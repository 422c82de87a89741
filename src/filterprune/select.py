"""Selection: turn per-channel scores into the channels to remove from each group."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .errors import ConfigError
from .graph.groups import DependencyGraph, Group


@dataclass(frozen=True)
class Selection:
    """How many channels to remove and under which constraints.

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
    """

    amount: float = 0.3
    scope: str = "per_group"
    min_channels: int = 1
    max_fraction: float = 1.0
    round_to: int = 1
    bins: tuple[tuple[int, float], ...] = ()

    def __post_init__(self) -> None:
        if not 0.0 <= self.amount < 1.0:
            raise ConfigError(
                f"amount must be a fraction in [0, 1) of the channels to remove, got {self.amount}"
            )
        if self.scope not in ("per_group", "global"):
            raise ConfigError(f"scope must be 'per_group' or 'global', got {self.scope!r}")
        if self.min_channels < 1:
            raise ConfigError(f"min_channels must be >= 1, got {self.min_channels}")
        if self.round_to < 1:
            raise ConfigError(f"round_to must be >= 1, got {self.round_to}")
        if not 0.0 < self.max_fraction <= 1.0:
            raise ConfigError(f"max_fraction must be in (0, 1], got {self.max_fraction}")
        for width, frac in self.bins:
            if width < 1 or not 0.0 <= frac < 1.0:
                raise ConfigError(f"bad bin ({width}, {frac}): need width >= 1, 0 <= fraction < 1")

    def fraction_for(self, n: int) -> float:
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


def _lowest(scores: torch.Tensor, k: int) -> list[int]:
    if k <= 0:
        return []
    order = torch.sort(scores.detach().double().flatten(), stable=True).indices  # ties: lower index
    return sorted(order[:k].tolist())


def _rounded_removal(n: int, k: int, sel: Selection) -> int:
    keep = _round_up(max(n - k, sel.min_channels), sel.round_to)
    return max(0, min(n - min(keep, n), sel.max_removable(n)))


def select(
    graph: DependencyGraph, scores: dict[str, torch.Tensor], selection: Selection
) -> dict[str, list[int]]:
    """Indices (within each group) of the channels to remove."""
    groups: list[Group] = [g for g in graph.prunable if g.name in scores]
    for g in groups:
        if scores[g.name].numel() != g.size:
            raise ConfigError(
                f"criterion returned {scores[g.name].numel()} scores for group '{g.name}', "
                f"which has {g.size} channels"
            )
    if selection.scope == "per_group":
        out = {}
        for g in groups:
            k = math.floor(g.size * selection.fraction_for(g.size) + 1e-9)
            out[g.name] = _lowest(scores[g.name], _rounded_removal(g.size, k, selection))
        return out
    total = sum(g.size for g in groups)
    budget = math.floor(total * selection.amount + 1e-9)
    values = [scores[g.name].detach().double().flatten().tolist() for g in groups]
    ranked = sorted((v, gi, i) for gi, row in enumerate(values) for i, v in enumerate(row))
    taken: dict[int, list[int]] = {gi: [] for gi in range(len(groups))}
    limits = [selection.max_removable(g.size) for g in groups]
    for _score, gi, i in ranked:
        if budget <= 0:
            break
        if len(taken[gi]) < limits[gi]:
            taken[gi].append(i)
            budget -= 1
    out = {}
    for gi, g in enumerate(groups):
        k = _rounded_removal(g.size, len(taken[gi]), selection)
        chosen = taken[gi]  # ascending score order: keep the lowest k after rounding
        out[g.name] = sorted(chosen[:k])
    return out
