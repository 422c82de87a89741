"""The sections of a :class:`~filterprune.config.PruneConfig`, each a small dataclass that checks itself.

* :class:`Removal`: how much each iteration removes, under which limits, from which layers;
* :class:`Finetuning`: the finetuning budget of each iteration and of the final model;
* :class:`Stopping`: when the run ends (iterations, pruned fraction, targets, metric bounds).

What the channels are ranked with is a :class:`filterprune.Ranking`, the same object
:func:`filterprune.prune` takes. Each section round-trips through JSON (``to_dict`` /
``from_dict``) and is replaced field by field with ``replace``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from .base import Default, SettingsData, fail, is_int, is_number
from .selection import Selection
from .target import Target

__all__ = [
    "DEFAULT_FINAL_FINETUNE",
    "DEFAULT_FINETUNE",
    "UNITS",
    "Budget",
    "Finetuning",
    "Removal",
    "Stopping",
]

UNITS = ("steps", "epochs")
#: Finetuning per iteration when ``Finetuning.per_iteration`` is not given, per unit.
DEFAULT_FINETUNE = {"steps": 100, "epochs": 1}
#: Finetuning of the final model when ``Finetuning.final`` is not given, per unit.
DEFAULT_FINAL_FINETUNE = {"steps": 300, "epochs": 1}


@dataclass(frozen=True)
class Removal(Selection):
    """How much each iteration removes, under which limits, and from which layers.

    A :class:`filterprune.Selection` (amount, scope, per-layer limits, layer filters; the same
    fields and defaults) with a schedule. The loop turns it into each iteration's selection
    (:meth:`selection`).

    Attributes:
        amount: Per iteration, a fraction in (0, 1) of the current channels (of all prunable
            channels with ``scope="global"``, of each group with ``"per_group"``), or an int:
            that many channels, ranked globally.
        schedule: Amounts for iterations 1, 2, ... (overrides ``amount``); the run stops when the
            schedule is used up.
        max_fraction: A global ranking removes at most this fraction of any group's current
            channels in one iteration (flat name ``max_layer_fraction``); ``None``: 2.5 times
            the iteration's share (0.25 at 10 %).
        The other fields are :class:`filterprune.Selection`'s.
    """

    schedule: tuple[float | int, ...] | None = None

    def __post_init__(self) -> None:
        if self.schedule is not None:
            schedule = tuple(self.schedule) if isinstance(self.schedule, list | tuple) else None
            if not schedule:
                fail(
                    "Removal", "schedule", self.schedule, "need a non-empty list of amounts or None"
                )
            object.__setattr__(self, "schedule", schedule)
        super().__post_init__()
        for i, value in enumerate(self.schedule or ()):
            self._check_amount(f"schedule[{i}]", value)

    def _check_amount(self, name: str, value: Any) -> None:
        """An amount is a fraction in (0, 1) of the current channels or an int count >= 1."""
        if is_int(value):
            super()._check_amount(name, value)
        elif not is_number(value) or not 0.0 < value < 1.0:
            fail(
                "Removal",
                name,
                value,
                "need a fraction in (0, 1) (e.g. 0.1) or an int channel count (e.g. 8)",
            )

    @classmethod
    def from_dict(cls, data: Any, *, source: str | None = None) -> Removal:
        if isinstance(data, Mapping) and "max_layer_fraction" in data:  # format 2 before 0.10
            data = {
                ("max_fraction" if k == "max_layer_fraction" else k): v for k, v in data.items()
            }
        return super().from_dict(data, source=source)

    @property
    def amounts(self) -> tuple[float | int, ...]:
        """The amounts that may be used: the schedule, or ``(amount,)``."""
        return self.schedule if self.schedule is not None else (self.amount,)

    def amount_for(self, iteration: int) -> float | int | None:
        """Amount of iteration ``iteration`` (1-based); ``None`` once the schedule is used up."""
        if self.schedule is None:
            return self.amount
        return self.schedule[iteration - 1] if iteration <= len(self.schedule) else None

    def selection(self, fraction: float, scope: str) -> Selection:
        """The :class:`filterprune.Selection` of one iteration removing ``fraction`` in ``scope``.

        It holds the limits and layer filters, with ``max_fraction`` made concrete for the
        iteration's share.
        """
        values = {f.name: getattr(self, f.name) for f in fields(Selection)}
        cap = self.layer_fraction(fraction) if scope == "global" else 1.0
        return Selection(**{**values, "amount": fraction, "scope": scope, "max_fraction": cap})


@dataclass(frozen=True)
class Budget:
    """How much finetuning one call of the ``finetune`` callback should do.

    Exactly one of ``steps`` / ``epochs`` is set (the other is ``None``), as for
    :class:`filterprune.tasks.FinetuneConfig`. ``final`` is true for the last finetuning of
    the final model (after the last removal), which a callback may run differently, e.g. at a
    higher rate that decays (:func:`filterprune.loop.task_callbacks` does with ``final_lr``).
    """

    amount: int
    unit: str = "steps"
    final: bool = False

    @property
    def steps(self) -> int | None:
        return self.amount if self.unit == "steps" else None

    @property
    def epochs(self) -> int | None:
        return self.amount if self.unit == "epochs" else None

    def __str__(self) -> str:
        return f"{self.amount} {self.unit[:-1] if self.amount == 1 else self.unit}"


@dataclass(frozen=True)
class Finetuning(SettingsData):
    """How much the loop finetunes after each removal and at the end.

    Attributes:
        per_iteration: Finetuning budget per iteration, in ``unit``; 0 disables it. ``None``
            (default): :data:`DEFAULT_FINETUNE` (100 steps or 1 epoch) when the run has a
            finetune callback, none otherwise. Pruning without finetuning rarely keeps accuracy.
        unit: ``"steps"`` or ``"epochs"``.
        final: Budget of one last finetuning of the final model (same unit); 0 = none;
            ``None`` (default): :data:`DEFAULT_FINAL_FINETUNE` (300 steps or 1 epoch) when
            ``per_iteration`` is not given either (and the run has a finetune callback), else
            none.
        recovery: When an iteration misses the metric bound (:class:`Stopping`), finetune it
            again with the iteration's budget up to this many times, evaluating after each,
            and accept it as soon as it is back within the bound; only then is it rejected and
            the run stopped. One noisy evaluation or a step that needs more training then does
            not end the run. 0 (default) = reject at the first miss.
    """

    per_iteration: int | None = None
    unit: str = "steps"
    final: int | None = None
    recovery: int = 0

    def __post_init__(self) -> None:
        own = "Finetuning"
        for name in ("per_iteration", "final"):
            value = getattr(self, name)
            if value is not None and (not is_int(value) or value < 0):
                fail(own, name, value, "need an int >= 0 (0 = none) or None (the default budget)")
        if self.unit not in UNITS:
            fail(own, "unit", self.unit, f"need one of {UNITS}")
        if not is_int(self.recovery) or self.recovery < 0:
            fail(own, "recovery", self.recovery, "need an int >= 0")

    def budget(self, final: bool = False) -> Budget:
        """The finetuning budget of an iteration (or the final one), defaults filled in."""
        value = self.final if final else self.per_iteration
        if final and value is None and self.per_iteration is not None:
            value = 0  # a per-iteration budget was given, a final one was not: none
        if value is None:
            value = (DEFAULT_FINAL_FINETUNE if final else DEFAULT_FINETUNE)[self.unit]
        return Budget(value, self.unit, final=final)


#: Iterations a run without targets stops after, unless ``max_iterations`` is set.
DEFAULT_MAX_ITERATIONS = 10


def _iteration_limit(stopping: Stopping) -> int | None:
    """No limit of its own for a run with targets (they end it), else 10 iterations."""
    return None if stopping.targets else DEFAULT_MAX_ITERATIONS


@dataclass(frozen=True)
class Stopping(SettingsData):
    """When the run ends; the first condition that holds stops it.

    Attributes:
        max_iterations: Run at most this many pruning iterations (``None`` = no limit).
            Default: 10, or no limit when ``targets`` are set (they, or
            ``max_pruned_fraction``, end the run).
        max_pruned_fraction: Never remove more than this fraction of the prunable channels of the
            starting model; checked before removing, and the last amount is clipped to fit.
        targets: Stop once all these targets are met: :class:`Target` objects, their dicts, or
            strings such as ``"macs=-50%"`` and ``"params<=1.5M"`` (see :meth:`Target.parse`).
            MACs are for one forward pass of ``example_inputs``.
        metric: Key of the ``evaluate`` result watched by ``metric_floor``/``max_metric_drop``.
        higher_is_better: Whether a larger ``metric`` is better.
        metric_floor: Stop when ``metric`` falls below this value; the last model above it is kept.
        max_metric_drop: Stop when ``metric`` is worse than the original by more than this
            (absolute); the last good model is kept.
        collapse_ratio: Guard for runs without ``metric_floor``/``max_metric_drop``: an
            iteration whose metric falls below ``collapse_ratio`` times the starting value (above
            starting / ratio when lower is better) is rejected, the last good model kept and
            the run stopped as ``"metric_collapse"``, a failure. The metric is ``metric``, else
            the first of ``accuracy``/``top1``/``dice``/``iou`` that ``evaluate`` reports.
            ``None`` turns the guard off. Default 0.5.
    """

    max_iterations: int | None = Default(derive=_iteration_limit)  # type: ignore[assignment]
    max_pruned_fraction: float = 0.9
    targets: tuple[Target, ...] = ()
    metric: str | None = None
    higher_is_better: bool = True
    metric_floor: float | None = None
    max_metric_drop: float | None = None
    collapse_ratio: float | None = 0.5

    def __post_init__(self) -> None:
        self._fill_defaults()
        own = "Stopping"
        if self.max_iterations is not None and (
            not is_int(self.max_iterations) or self.max_iterations < 1
        ):
            fail(own, "max_iterations", self.max_iterations, "need an int >= 1 or None (no limit)")
        if not is_number(self.max_pruned_fraction) or not 0 < self.max_pruned_fraction <= 1:
            fail(own, "max_pruned_fraction", self.max_pruned_fraction, "need a fraction in (0, 1]")
        targets = []
        for t in self.targets if isinstance(self.targets, list | tuple) else [self.targets]:
            if isinstance(t, str):
                t = Target.parse(t)
            elif isinstance(t, Mapping):
                t = Target(**t)
            elif not isinstance(t, Target):
                fail(own, "targets", t, "need Target objects, dicts or strings such as 'macs=-50%'")
            targets.append(t)
        object.__setattr__(self, "targets", tuple(targets))
        if self.metric is not None and (not isinstance(self.metric, str) or not self.metric):
            fail(own, "metric", self.metric, "need the name of a key of the evaluate() result")
        if not isinstance(self.higher_is_better, bool):
            fail(own, "higher_is_better", self.higher_is_better, "need true or false")
        for name in ("metric_floor", "max_metric_drop"):
            value = getattr(self, name)
            if value is None:
                continue
            if not is_number(value):
                fail(own, name, value, "need a number or None")
            if self.metric is None:
                fail(
                    own,
                    name,
                    value,
                    "needs `metric` (the evaluate() key to watch), e.g. metric='accuracy'",
                )
        if self.max_metric_drop is not None and self.max_metric_drop < 0:
            fail(own, "max_metric_drop", self.max_metric_drop, "need a number >= 0")
        if self.collapse_ratio is not None and (
            not is_number(self.collapse_ratio) or not 0 < self.collapse_ratio < 1
        ):
            fail(
                own,
                "collapse_ratio",
                self.collapse_ratio,
                "need a fraction in (0, 1) of the starting metric (e.g. 0.5) or None (no guard)",
            )

    @property
    def watches_metric(self) -> bool:
        """Whether a metric bound (``metric_floor`` or ``max_metric_drop``) is set."""
        return self.metric_floor is not None or self.max_metric_drop is not None

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "targets": [t.to_dict() for t in self.targets]}
