"""Stop conditions of the pruning loop and the clipping that keeps it under its maximum.

The maximum pruned fraction is enforced *before* channels are removed: the amount of the next
iteration is clipped so that the total can never overshoot (Ridurre checked it only after
finetuning, which overshoots). The iteration limit counts pruning iterations exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ..config import PruneConfig, Target
from ..errors import NonFiniteError, UnknownNameError
from ..measure.latency import BUSY_FLAGS, busy

__all__ = [
    "RETRYABLE_STOPS",
    "STOP_REASONS",
    "StepAmount",
    "Guard",
    "check_finite",
    "collapse_guard",
    "metric_threshold",
    "paced_amount",
    "plan_removal",
    "latency_verdict",
    "targets_reached",
    "undecided_latency",
    "unmet_targets",
]

STOP_REASONS = {
    "max_iterations": "the iteration limit was reached",
    "max_pruned_fraction": "the maximum pruned fraction was reached",
    "target_reached": "all targets were met",
    "metric_floor": "the metric fell below its floor; the last good model was kept",
    "metric_collapse": "the metric collapsed (PruneConfig.collapse_ratio); the last good model "
    "was kept",
    "nothing_left": "no prunable channels are left",
    "schedule_done": "the schedule is used up",
    "non_finite": "finetuning produced a NaN or infinite loss or weights; the last good model "
    "was kept (lower the learning rate and resume)",
}

# Stops after which ``resume`` continues the run instead of returning the stored result.
RETRYABLE_STOPS = ("non_finite",)


@dataclass(frozen=True)
class StepAmount:
    """What :func:`filterprune.prune` is asked to remove in one iteration.

    Attributes:
        fraction: ``amount`` passed to :func:`filterprune.prune` (< 1).
        scope: ``"per_group"`` or ``"global"``.
        clipped: Whether the maximum pruned fraction made the amount smaller than configured.
    """

    fraction: float
    scope: str
    clipped: bool


def plan_removal(
    amount: float | int, scope: str, *, prunable: int, remaining: int
) -> StepAmount | None:
    """Turn a configured amount into a fraction that cannot overshoot ``remaining`` channels.

    Args:
        amount: A fraction of the current channels, or an int channel count (global scope).
        scope: ``"per_group"`` or ``"global"``.
        prunable: Channels in the prunable groups now.
        remaining: Channels that may still be removed under the maximum pruned fraction.

    Returns:
        The removal, or ``None`` if nothing may be removed. Per group, each group loses at most
        ``floor(size * fraction)``; globally ``floor(prunable * fraction)``; both are at most
        ``remaining`` because ``fraction <= remaining / prunable``.
    """
    if prunable <= 0 or remaining <= 0:
        return None
    if isinstance(amount, int):
        count = min(amount, remaining, prunable - 1)
        if count <= 0:
            return None
        return StepAmount(count / prunable, "global", clipped=count < amount)
    cap = remaining / prunable
    if amount <= cap:
        return StepAmount(float(amount), scope, clipped=False)
    return StepAmount(min(cap, (prunable - 1) / prunable), scope, clipped=True)


#: A step paced toward a latency goal aims this much past it, so that it lands on the goal
#: rather than one small step short.
PACE_MARGIN = 1.05


def paced_amount(config: PruneConfig, rows: list[Mapping[str, Any]], amount: Any) -> Any:
    """``amount``, made smaller when a full step would go well past a latency goal.

    The last two accepted rows with a side-by-side speed-up say what one step of the amount
    they removed gained (in log speed-up); the next fraction is scaled to what is still
    missing, aiming :data:`PACE_MARGIN` past it, and never grows. Counts, runs without a
    latency reduction target and runs before their first timed step keep ``amount``.
    """
    goals = [1.0 / (1.0 - t.reduction) for t in config.targets if t.quantity == "latency"
             and t.reduction is not None]  # fmt: skip
    if not goals or isinstance(amount, int):
        return amount
    timed = [r for r in rows if r.get("accepted") and r.get("speedup")]
    if len(timed) < 2 or not timed[-1].get("amount"):
        return amount
    before, last = deciding_speedup(timed[-2]) or 1.0, deciding_speedup(timed[-1]) or 1.0
    goal = max(goals)
    if last >= goal or last <= before * 1.01:  # met, or the last step gained nothing clear
        return amount
    per_fraction = math.log(last / before) / float(timed[-1]["amount"])
    wanted = math.log(goal * PACE_MARGIN / last) / per_fraction
    return min(amount, max(wanted, 0.01))


def max_removable(base_total: int, max_pruned_fraction: float) -> int:
    """Channels the whole run may remove out of ``base_total``."""
    return math.floor(base_total * max_pruned_fraction + 1e-9)


#: Timing flags (their first word) under which a latency target is not decided by the timing
UNDECIDING_FLAGS = BUSY_FLAGS

#: ``latency_decided_by`` of a row whose latency decision rests on the lookup table's prediction
TABLE = "lookup table"
#: ``latency_decided_by`` of a row whose latency decision rests on each model's fastest
#: unpreempted block (``floor_speedup``, :func:`filterprune.measure.floor_speedup`)
FLOOR = "fastest unpreempted blocks"

_ROW_KEYS = {"macs": "macs", "params": "params", "size": "size_mb", "latency": "latency_ms"}


def _quartiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        pos = q * (len(ordered) - 1)
        low = math.floor(pos)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)

    return at(0.25), at(0.75)


def latency_verdict(target: Target, row: Mapping[str, Any]) -> bool | None:
    """Whether a latency reduction ``target`` holds for ``row``, from the side-by-side speed-up.

    The speed-up of each alternating round (the model and the original timed in one process,
    turn by turn) is compared with the goal ``1 / (1 - reduction)``: met when the middle half
    of the rounds is at or above it, missed when it is below, ``None`` (undecided) when the
    middle half straddles the goal, the row has no side-by-side rounds, or a model's timing was
    flagged noisy. A noisy timing is not only spread but biased: on an overloaded machine the
    longer model's calls are cut by other processes more often than the shorter one's, so every
    round can overstate the speed-up alike (7.2x measured for 3.4x fewer MACs at load 12, 2.7x
    when timed again minutes later). A ``preempted`` timing (its process held a core less than
    ``MIN_CPU_SHARE`` of the time) does not decide either, even with rounds that agree and no
    IQR flag: on a core 54 % of the time one read 12.2x for a model that runs 7.2x alone.
    """
    rounds = row.get("round_speedups")
    if target.reduction is None or not rounds:
        return None
    if busy(row.get("latency_flags")):
        return None  # calls interrupted unevenly: the longer model's more often, a biased ratio
    goal = 1.0 / (1.0 - target.reduction)
    low, high = _quartiles([float(r) for r in rounds])
    if low >= goal:
        return True
    if high < goal:
        return False
    return None


def undecided_latency(config: PruneConfig, row: Mapping[str, Any]) -> list[Target]:
    """The latency reduction targets whose measurement in ``row`` is too wide to decide."""
    return [
        t
        for t in config.targets
        if t.quantity == "latency" and t.reduction is not None and latency_verdict(t, row) is None
    ]


#: A table prediction this many times below a latency goal is far enough from it that an
#: undecided timing is not repeated (against idle timings the table was off by -6 % to +13 % at
#: batch 1 and up to +48 % at batch 16: docs/benchmarks.md, "Latency as the target").
FAR_BELOW = 1.5


def far_below_goal(config: PruneConfig, row: Mapping[str, Any]) -> bool:
    """Whether the lookup table's prediction in ``row`` is :data:`FAR_BELOW` times below every
    latency goal that its timing leaves undecided."""
    predicted = row.get("table_speedup")
    goals = [1.0 / (1.0 - t.reduction) for t in undecided_latency(config, row)]
    return bool(predicted and goals) and predicted * FAR_BELOW < min(goals)


def deciding_speedup(row: Mapping[str, Any]) -> float | None:
    """The speed-up a latency decision rests on: where the side-by-side rounds could not decide
    (``latency_decided_by``), the fastest unpreempted blocks or the lookup table's prediction;
    else the measured median."""
    decided_by = row.get("latency_decided_by")
    if decided_by == FLOOR and row.get("floor_speedup"):
        return float(row["floor_speedup"])
    if decided_by == TABLE and row.get("table_speedup"):
        return float(row["table_speedup"])
    return float(row["speedup"]) if row.get("speedup") else None


def _reached(target: Target, original: Mapping[str, Any], row: Mapping[str, Any]) -> bool:
    if target.quantity == "latency" and target.reduction is not None and row.get("speedup"):
        verdict = latency_verdict(target, row)
        if verdict is not None and row.get("latency_decided_by") not in (TABLE, FLOOR):
            return verdict
        # too noisy to decide after the re-measurements: the fastest unpreempted blocks decide,
        # else the lookup table's prediction where the run has one, else the median speed-up
        return (deciding_speedup(row) or 0.0) >= 1.0 / (1.0 - target.reduction)
    key = _ROW_KEYS[target.quantity]
    if row.get(key) is None or original.get(key) is None:
        return False
    return target.reached(float(original[key]), float(row[key]))


def targets_reached(
    config: PruneConfig, original: Mapping[str, Any], row: Mapping[str, Any]
) -> bool:
    """Whether every target of ``config`` holds for ``row`` (False when there are none).

    A latency reduction is judged on the speed-up measured side by side with the original
    (:func:`latency_verdict`), never on two latencies measured at different moments.
    """
    if not config.targets:
        return False
    return all(_reached(target, original, row) for target in config.targets)


def unmet_targets(
    config: PruneConfig, original: Mapping[str, Any], row: Mapping[str, Any]
) -> list[str]:
    """The targets of ``config`` that ``row`` misses, each with the value reached."""
    missed = []
    for target in config.targets:
        key = _ROW_KEYS[target.quantity]
        value = row.get(key)
        if _reached(target, original, row):
            continue
        if target.quantity == "latency" and target.at_most is not None and value is not None:
            missed.append(f"{target} (reached {float(value):.3g} ms)")
        elif target.quantity == "latency" and row.get("speedup"):
            missed.append(f"{target} (speed-up {float(row['speedup']):.2f}x)")
        else:
            missed.append(f"{target} (reached {value:.4g})" if value is not None else str(target))
    return missed


def check_finite(model: Any) -> None:
    """Raise ``FloatingPointError`` naming the first parameter that holds NaN or inf."""
    params = [(n, p) for n, p in model.named_parameters() if p.is_floating_point()]
    if not params or bool(torch.stack([p.detach().isfinite().all() for _, p in params]).all()):
        return
    name = next(n for n, p in params if not bool(p.detach().isfinite().all()))
    raise NonFiniteError(f"finetuning left NaN or inf values in parameter {name!r}")


def metric_threshold(config: PruneConfig, original_metrics: Mapping[str, float]) -> float | None:
    """The worst acceptable value of ``config.metric`` (``None`` if no floor is set)."""
    if not config.watches_metric:
        return None
    if config.metric not in original_metrics:
        raise UnknownNameError(
            f"PruneConfig.metric {config.metric!r} is not in the evaluate() result; its keys "
            f"are: {', '.join(original_metrics) or '(none)'}"
        )
    candidates = []
    if config.metric_floor is not None:
        candidates.append(float(config.metric_floor))
    if config.max_metric_drop is not None:
        base = float(original_metrics[config.metric])
        drop = float(config.max_metric_drop)
        candidates.append(base - drop if config.higher_is_better else base + drop)
    return max(candidates) if config.higher_is_better else min(candidates)


#: Metrics the collapse guard watches when ``PruneConfig.metric`` is not set (all higher-is-better).
GUARDED_METRICS = ("accuracy", "top1", "dice", "iou")


@dataclass(frozen=True)
class Guard:
    """The collapse guard of a run without a metric bound: ``metric`` must stay past ``limit``."""

    metric: str
    higher_is_better: bool
    start: float
    limit: float
    ratio: float

    def holds(self, metrics: Mapping[str, float]) -> bool:
        value = metrics.get(self.metric)
        if value is None or not math.isfinite(float(value)):
            return False
        return value >= self.limit if self.higher_is_better else value <= self.limit

    def describe(self, metrics: Mapping[str, float]) -> str:
        value = metrics.get(self.metric)
        shown = f"{float(value):.4g}" if value is not None else "missing"
        side = "below" if self.higher_is_better else "above"
        return (
            f"{self.metric} collapsed to {shown}, {side} {self.limit:.4g} "
            f"({self.ratio:g} x the starting {self.start:.4g})"
        )


def collapse_guard(config: PruneConfig, original_metrics: Mapping[str, float]) -> Guard | None:
    """The collapse guard of ``config`` (``None`` with a metric bound, or when it is off)."""
    if config.watches_metric or config.collapse_ratio is None:
        return None
    if config.metric is not None:
        metric, higher = config.metric, config.higher_is_better
    else:
        metric = next((m for m in GUARDED_METRICS if m in original_metrics), None)
        higher = True
    start = original_metrics.get(metric) if metric is not None else None
    if start is None or not math.isfinite(float(start)) or float(start) <= 0:
        return None  # nothing known to watch (or a metric whose ratio means nothing)
    start, ratio = float(start), float(config.collapse_ratio)
    limit = start * ratio if higher else start / ratio
    return Guard(metric=metric, higher_is_better=higher, start=start, limit=limit, ratio=ratio)


def metric_ok(config: PruneConfig, threshold: float | None, metrics: Mapping[str, float]) -> bool:
    if threshold is None:
        return True
    value = metrics.get(config.metric)
    if value is None or not math.isfinite(float(value)):
        return False
    return value >= threshold if config.higher_is_better else value <= threshold
