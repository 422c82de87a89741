"""Which setting limits a run: said at the start, after an iteration, and in the stop reason.

A run that removes less than asked, or stops short of its goal, names the setting that held it
back, so that the fix is one flag away: ``--max-layer-fraction`` (each iteration takes at most
that share of any layer), ``--max-iterations`` (a fractional ``--amount`` of the current channels
removes ``1 - (1 - amount) ** n`` of them in ``n`` iterations) or ``--max-pruned-fraction``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import PruneConfig

__all__ = [
    "goal_fraction",
    "layer_cap",
    "reachable_fraction",
    "start_warnings",
    "short_step_warning",
]


def layer_cap(sizes: Sequence[int], *, max_layer_fraction: float, min_channels: int) -> int:
    """Most channels one iteration may remove from groups of ``sizes`` channels."""
    return sum(
        max(0, min(math.floor(size * max_layer_fraction), size - min_channels)) for size in sizes
    )


def reachable_fraction(config: PruneConfig, base_total: int) -> float | None:
    """Fraction of the ``base_total`` prunable channels that ``max_iterations`` can remove.

    ``None`` when there is no iteration limit. Fractional amounts remove a share of the current
    channels (so ``1 - prod(1 - a)``), channel counts add up. The per-layer cap is not counted.
    """
    if config.max_iterations is None or base_total <= 0:
        return None
    kept = 1.0
    for i in range(1, config.max_iterations + 1):
        amount = config.amount_for(i)
        if amount is None:
            break
        if isinstance(amount, int):
            kept -= amount / base_total
        else:
            kept *= 1 - amount
        if kept <= 0:
            return 1.0
    return 1 - kept


def goal_fraction(config: PruneConfig) -> float | None:
    """The maximum pruned fraction the user set as a goal (``None``: the default cap, or none)."""
    from ..config import Stopping

    goal = config.max_pruned_fraction
    default = next(f.default for f in fields(Stopping) if f.name == "max_pruned_fraction")
    return None if goal >= 1 or goal == default or config.targets else goal


def start_warnings(config: PruneConfig, sizes: Sequence[int]) -> list[str]:
    """What the settings cannot do, for a model whose prunable groups have ``sizes`` channels."""
    warnings = []
    base_total = sum(sizes)
    reachable = reachable_fraction(config, base_total)
    goal = goal_fraction(config)
    if reachable is not None and goal is not None and reachable + 1e-9 < goal:
        warnings.append(
            f"max_pruned_fraction={goal:g} (--max-pruned-fraction) cannot be reached: "
            f"max_iterations={config.max_iterations} (--max-iterations) of amount="
            f"{config.amounts[0]:g} remove at most {reachable:.0%} of the prunable channels; "
            "raise --max-iterations or --amount"
        )
    amount = config.amount_for(1)
    share = config.removal.layer_fraction(
        amount / base_total if isinstance(amount, int) and base_total else 0
    )
    cap = layer_cap(sizes, max_layer_fraction=share, min_channels=config.min_channels)
    if isinstance(amount, int) and amount > cap:
        warnings.append(
            f"amount={amount} (--amount) asks for more channels than one iteration may take: "
            f"max_layer_fraction={share:g} (--max-layer-fraction) and "
            f"min_channels={config.min_channels} (--min-channels) allow at most {cap} of the "
            f"{base_total} prunable channels"
        )
    return warnings


def short_step_warning(
    config: PruneConfig, iteration: int, asked: int, removed: int, fraction: float
) -> str | None:
    """Why iteration ``iteration`` removed ``removed`` channels where ``asked`` were planned."""
    if removed >= asked:
        return None
    return (
        f"iteration {iteration} removed {removed} of the {asked} channels asked for: each "
        f"iteration takes at most max_layer_fraction={config.removal.layer_fraction(fraction):g} "
        "(--max-layer-fraction) of any layer, keeping min_channels="
        f"{config.min_channels} (--min-channels) and round_to"
    )
