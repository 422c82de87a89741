"""The configuration of an iterative pruning run: a dataclass that checks itself and round-trips JSON.

One iteration ranks the channels, removes ``amount`` of them, finetunes and evaluates; the run stops
at the first stop condition that holds (see :class:`PruneConfig`). Ridurre's loop (Li, Xu & Zhu,
IEICE 2018) and Molchanov et al.'s schedule (ICLR 2017, https://arxiv.org/abs/1611.06440) are both
instances: a per-iteration fraction with a maximum pruned fraction, or a few channels per iteration
with a few finetuning steps in between.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from ..criteria.regularize import COSTS
from ..measure.latency_config import LatencyConfig
from ..settings import LAYER_FILTERS, Ranking, Selection
from .errors import ConfigError
from .target import Target

__all__ = [
    "DEFAULT_FINAL_FINETUNE",
    "DEFAULT_FINETUNE",
    "RECIPE",
    "SCOPES",
    "Budget",
    "ConfigError",
    "PruneConfig",
    "Target",
]

SCOPES = ("per_group", "global")
UNITS = ("steps", "epochs")
CONFIG_FORMAT = 1
#: Finetuning per iteration when ``PruneConfig.finetune`` is not given, per unit.
DEFAULT_FINETUNE = {"steps": 100, "epochs": 1}
#: Finetuning of the final model when ``PruneConfig.final_finetune`` is not given, per unit.
DEFAULT_FINAL_FINETUNE = {"steps": 300, "epochs": 1}
#: The default recipe of ``filterprune prune`` (and :meth:`PruneConfig.recipe`): what a run with
#: nothing else set does. Taylor scores (Molchanov et al. 2017), normalised per layer, ranked
#: globally, minus ``flops_reg`` times each channel's MAC cost (scaled to [0, 1]), 10 % of the
#: prunable channels per iteration, at most ``max_layer_fraction`` of any layer per iteration,
#: convolution filters only (``layer_types=("conv",)``: a hidden Linear costs few MACs).
#: docs/benchmarks.md (Fashion-MNIST) holds the comparison these values come from.
RECIPE: Mapping[str, Any] = {
    "criterion": "taylor",
    "scope": "global",
    "flops_reg": 0.1,
    "cost": "flops",
    "amount": 0.1,
    "layer_types": ("conv",),
}


def _fail(name: str, value: Any, need: str) -> None:
    raise ConfigError(f"PruneConfig.{name}: {need}, got {value!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_amount(name: str, value: Any) -> None:
    """An amount is a fraction in (0, 1) of the current channels or an int count >= 1."""
    if _is_int(value):
        if value < 1:
            _fail(name, value, "a channel count must be an int >= 1")
    elif not _is_number(value) or not 0.0 < value < 1.0:
        _fail(name, value, "need a fraction in (0, 1) (e.g. 0.1) or an int channel count (e.g. 8)")


@dataclass(frozen=True)
class Budget:
    """How much finetuning one call of the ``finetune`` callback should do.

    Exactly one of ``steps`` / ``epochs`` is set (the other is ``None``), as for
    :class:`filterprune.tasks.FinetuneConfig`.
    """

    amount: int
    unit: str = "steps"

    @property
    def steps(self) -> int | None:
        return self.amount if self.unit == "steps" else None

    @property
    def epochs(self) -> int | None:
        return self.amount if self.unit == "epochs" else None

    def __str__(self) -> str:
        return f"{self.amount} {self.unit}"


@dataclass(frozen=True)
class PruneConfig:
    """Everything an iterative pruning run needs besides the model, the data and the callbacks.

    Attributes:
        criterion: Registered criterion name (``filterprune.list_criteria()``), e.g. ``"l1"`` or
            ``"taylor"``.
        criterion_options: Keyword options for the criterion's constructor.
        normalize: Per-group L2 normalisation of the scores (Molchanov et al. 2017); it makes
            one global ranking fair across layers.
        flops_reg: Cost regularisation ``lambda`` (1e-3 in the paper; 0 = off): channels of
            expensive layers go first at equal importance.
        cost: What ``flops_reg`` charges: ``"flops"``, ``"params"``, ``"memory"`` or
            ``"latency"`` (each layer's forward timed on this machine at the example batch).
        amount: Per iteration, a fraction in (0, 1) of the current channels of each group
            (``scope="per_group"``) or of all prunable channels (``"global"``), or an int: that
            many channels, ranked globally.
        schedule: Amounts for iterations 1, 2, ... (overrides ``amount``); the run stops when the
            schedule is used up.
        scope: ``"per_group"``, ``"global"`` or ``None``: per group for fractions, global for
            counts and whenever ``flops_reg`` is set (a cost term only reorders channels across
            layers, so per group it would do nothing; an explicit ``"per_group"`` with
            ``flops_reg`` is refused). Counts need the global scope.
        ranking_batches: Batches fed to a data-driven criterion per iteration (ignored by
            data-free criteria such as ``"l1"``).
        finetune: Finetuning budget per iteration, in ``finetune_unit``; 0 disables it. ``None``
            (default): :data:`DEFAULT_FINETUNE` (100 steps or 1 epoch) when the run has a
            finetune callback, none otherwise. Pruning without finetuning rarely keeps accuracy.
        finetune_unit: ``"steps"`` or ``"epochs"``.
        final_finetune: Budget of one last finetuning of the final model (same unit); 0 = none;
            ``None`` (default): :data:`DEFAULT_FINAL_FINETUNE` (300 steps or 1 epoch) when
            ``finetune`` is not given either (and the run has a finetune callback), else none.
        max_iterations: Run at most this many pruning iterations (``None`` = no limit).
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
        recovery: When an iteration misses ``metric_floor``/``max_metric_drop``, finetune it
            again with the iteration's budget up to this many times, evaluating after each,
            and accept it as soon as it is back within the bound; only then is it rejected and
            the run stopped. One noisy evaluation or a step that needs more training then does
            not end the run. 0 (default) = reject at the first miss.
        include: Only prune layers whose module name matches one of these fnmatch patterns.
        exclude: Never prune layers matching these patterns.
        layer_types: Only prune layers of these class names (e.g. ``"Conv2d"``); ``"conv"``
            stands for every convolution class. With none given, a channel-count amount is
            spent on convolutions only (``"conv"``): one global count would otherwise go to the
            widest layers, often a classifier's hidden Linear, whose channels cost few MACs.
        layers: Only prune exactly these layers (module names).
        round_to: Keep a multiple of this many channels per group.
        min_channels: Keep at least this many channels per group.
        max_layer_fraction: A global ranking removes at most this fraction of any group's
            current channels in one iteration (on top of ``min_channels``), so that it cannot
            empty a small layer in one step. Default 0.25; 1.0 = no cap. (Per group, ``amount``
            is itself each group's fraction.)
        measure_latency: Time a forward pass each iteration (also on with a latency target):
            the loop keeps a copy of the starting model and times it beside each iteration's
            model in alternating rounds, so the speed-up is never a ratio of figures taken at
            different moments (see :func:`filterprune.measure.compare_latency`).
        latency: How to time it: a :class:`filterprune.measure.LatencyConfig` or its dict
            (devices, batch sizes, input size, threads, rounds, repeats). The iteration table
            shows the first batch size on the run's device; the latency table shows every
            measurement.
        seed: RNG seed; every iteration reseeds from ``(seed, iteration)``, so a resumed run
            reproduces an uninterrupted one.
        device: Where the model runs during the loop, e.g. ``"cpu"`` or ``"cuda"``.
    """

    criterion: str = "l1"
    criterion_options: Mapping[str, Any] = field(default_factory=dict)
    normalize: bool = True
    flops_reg: float = 0.0
    cost: str = "flops"
    amount: float | int = 0.1
    schedule: tuple[float | int, ...] | None = None
    scope: str | None = None
    ranking_batches: int = 10
    finetune: int | None = None
    finetune_unit: str = "steps"
    final_finetune: int | None = None
    max_iterations: int | None = 10
    max_pruned_fraction: float = 0.9
    targets: tuple[Target, ...] = ()
    metric: str | None = None
    higher_is_better: bool = True
    metric_floor: float | None = None
    max_metric_drop: float | None = None
    collapse_ratio: float | None = 0.5
    recovery: int = 0
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    layer_types: tuple[str, ...] = ()
    layers: tuple[str, ...] = ()
    round_to: int = 1
    min_channels: int = 1
    max_layer_fraction: float = 0.25
    measure_latency: bool = False
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if not isinstance(self.criterion, str) or not self.criterion:
            _fail("criterion", self.criterion, "need a criterion name such as 'l1' or 'taylor'")
        if not isinstance(self.criterion_options, Mapping):
            _fail("criterion_options", self.criterion_options, "need a dict of keyword options")
        object.__setattr__(self, "criterion_options", dict(self.criterion_options))
        if not isinstance(self.normalize, bool):
            _fail("normalize", self.normalize, "need true or false")
        if not _is_number(self.flops_reg) or self.flops_reg < 0:
            _fail("flops_reg", self.flops_reg, "need a number >= 0 (1e-3 in the paper, 0 = off)")
        if self.cost not in COSTS:
            _fail("cost", self.cost, f"need one of {COSTS}")
        check_amount("amount", self.amount)
        if self.schedule is not None:
            schedule = tuple(self.schedule) if isinstance(self.schedule, list | tuple) else None
            if not schedule:
                _fail("schedule", self.schedule, "need a non-empty list of amounts or None")
            for i, value in enumerate(schedule):
                check_amount(f"schedule[{i}]", value)
            object.__setattr__(self, "schedule", schedule)
        if self.scope is not None and self.scope not in SCOPES:
            _fail("scope", self.scope, f"need one of {SCOPES} or None")
        if self.scope == "per_group" and any(_is_int(a) for a in self.amounts):
            _fail(
                "scope",
                self.scope,
                "a channel-count amount is ranked globally; use scope "
                "'global' (or None), or give amount as a fraction such as 0.1",
            )
        if self.flops_reg > 0 and self.scope == "per_group":
            _fail(
                "scope",
                self.scope,
                f"flops_reg={self.flops_reg} reorders channels across layers and does nothing "
                "when each group loses its own fraction; use scope 'global' (or None, which "
                "ranks globally when flops_reg is set) or flops_reg 0",
            )
        self._check_ints()
        if not _is_number(self.max_layer_fraction) or not 0 < self.max_layer_fraction <= 1:
            _fail(
                "max_layer_fraction",
                self.max_layer_fraction,
                "need a fraction in (0, 1] of a layer's channels (1.0 = no cap), e.g. 0.25",
            )
        if self.collapse_ratio is not None and (
            not _is_number(self.collapse_ratio) or not 0 < self.collapse_ratio < 1
        ):
            _fail(
                "collapse_ratio",
                self.collapse_ratio,
                "need a fraction in (0, 1) of the starting metric (e.g. 0.5) or None (no guard)",
            )
        if self.finetune_unit not in UNITS:
            _fail("finetune_unit", self.finetune_unit, f"need one of {UNITS}")
        if not _is_number(self.max_pruned_fraction) or not 0 < self.max_pruned_fraction <= 1:
            _fail("max_pruned_fraction", self.max_pruned_fraction, "need a fraction in (0, 1]")
        self._check_targets_and_metric()
        for name in ("include", "exclude", "layer_types", "layers"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) and v for v in value):
                _fail(name, value, "need a list of non-empty strings")
            object.__setattr__(self, name, tuple(value))
        if not isinstance(self.device, str) or not self.device:
            _fail("device", self.device, "need a device name such as 'cpu' or 'cuda'")
        if isinstance(self.latency, Mapping):
            try:
                object.__setattr__(self, "latency", LatencyConfig.from_dict(self.latency))
            except ValueError as exc:
                raise ConfigError(f"PruneConfig.latency: {exc}") from None
        elif not isinstance(self.latency, LatencyConfig):
            _fail("latency", self.latency, "need a LatencyConfig or a dict of its fields")

    def _check_ints(self) -> None:
        for name, low in (
            ("ranking_batches", 0),
            ("recovery", 0),
            ("round_to", 1),
            ("min_channels", 1),
            ("seed", 0),
        ):
            value = getattr(self, name)
            if not _is_int(value) or value < low:
                _fail(name, value, f"need an int >= {low}")
        for name in ("finetune", "final_finetune"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value < 0):
                _fail(name, value, "need an int >= 0 (0 = none) or None (the default budget)")
        if self.max_iterations is not None and (
            not _is_int(self.max_iterations) or self.max_iterations < 1
        ):
            _fail("max_iterations", self.max_iterations, "need an int >= 1 or None (no limit)")

    def _check_targets_and_metric(self) -> None:
        targets = []
        for t in self.targets if isinstance(self.targets, list | tuple) else [self.targets]:
            if isinstance(t, str):
                t = Target.parse(t)
            elif isinstance(t, Mapping):
                t = Target(**t)
            elif not isinstance(t, Target):
                _fail("targets", t, "need Target objects, dicts or strings such as 'macs=-50%'")
            targets.append(t)
        object.__setattr__(self, "targets", tuple(targets))
        if self.metric is not None and (not isinstance(self.metric, str) or not self.metric):
            _fail("metric", self.metric, "need the name of a key of the evaluate() result")
        for name in ("metric_floor", "max_metric_drop"):
            value = getattr(self, name)
            if value is None:
                continue
            if not _is_number(value):
                _fail(name, value, "need a number or None")
            if self.metric is None:
                _fail(
                    name,
                    value,
                    "needs `metric` (the evaluate() key to watch), e.g. metric='accuracy'",
                )
        if self.max_metric_drop is not None and self.max_metric_drop < 0:
            _fail("max_metric_drop", self.max_metric_drop, "need a number >= 0")

    # ----- derived ---------------------------------------------------------------------------
    @property
    def amounts(self) -> tuple[float | int, ...]:
        """The amounts that may be used: the schedule, or ``(amount,)``."""
        return self.schedule if self.schedule is not None else (self.amount,)

    def amount_for(self, iteration: int) -> float | int | None:
        """Amount of iteration ``iteration`` (1-based); ``None`` once the schedule is used up."""
        if self.schedule is None:
            return self.amount
        return self.schedule[iteration - 1] if iteration <= len(self.schedule) else None

    def scope_for(self, amount: float | int) -> str:
        if self.scope is not None:
            return self.scope
        return "global" if _is_int(amount) or self.flops_reg > 0 else "per_group"

    @property
    def selected_layer_types(self) -> tuple[str, ...]:
        """``layer_types``, or ``("conv",)`` when none are given and an amount is a count."""
        if self.layer_types or self.include or self.layers:
            return self.layer_types
        return ("conv",) if any(_is_int(a) for a in self.amounts) else ()

    @property
    def needs_latency(self) -> bool:
        return self.measure_latency or any(t.quantity == "latency" for t in self.targets)

    @property
    def watches_metric(self) -> bool:
        return self.metric_floor is not None or self.max_metric_drop is not None

    @property
    def ranking(self) -> Ranking:
        """The ranking settings of every iteration, as one :class:`filterprune.Ranking`."""
        return Ranking(
            criterion=self.criterion,
            options=self.criterion_options,
            normalize=self.normalize,
            flops_reg=self.flops_reg,
            cost=self.cost,
            batches=self.ranking_batches,
        )

    def selection(self, fraction: float, scope: str) -> Selection:
        """The :class:`filterprune.Selection` of one iteration removing ``fraction`` in ``scope``."""
        return Selection(
            amount=fraction,
            scope=scope,
            round_to=self.round_to,
            min_channels=self.min_channels,
            **{name: getattr(self, name) for name in LAYER_FILTERS},
        )

    def budget(self, final: bool = False) -> Budget:
        """The finetuning budget of an iteration (or the final one), defaults filled in."""
        value = self.final_finetune if final else self.finetune
        if final and value is None and self.finetune is not None:
            value = 0  # a per-iteration budget was given, a final one was not: none
        if value is None:
            value = (DEFAULT_FINAL_FINETUNE if final else DEFAULT_FINETUNE)[self.finetune_unit]
        return Budget(value, self.finetune_unit)

    @classmethod
    def recipe(cls, **changes: Any) -> PruneConfig:
        """The default recipe of ``filterprune prune`` (:data:`RECIPE`) with ``changes`` on top."""
        return cls(**{**RECIPE, **changes})

    # ----- JSON ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": CONFIG_FORMAT}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "targets":
                value = [t.to_dict() for t in value]
            elif isinstance(value, LatencyConfig):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            out[f.name] = value
        return out

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "config") -> PruneConfig:
        """Build a config from a dict as written by :meth:`to_dict` (missing keys: defaults)."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: expected a JSON object, got {type(data).__name__}")
        data = dict(data)
        version = data.pop("format", CONFIG_FORMAT)
        if version != CONFIG_FORMAT:
            raise ConfigError(
                f"{source}: config format {version!r} is not supported (this filterprune reads "
                f"format {CONFIG_FORMAT})"
            )
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(
                f"{source}: unknown config keys {unknown}; known keys: {', '.join(known)}"
            )
        for key in ("schedule", "include", "exclude", "layer_types", "layers", "targets"):
            if isinstance(data.get(key), list):
                data[key] = tuple(data[key])
        try:
            return cls(**data)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None

    @classmethod
    def from_json(cls, text: str, *, source: str = "config") -> PruneConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{source}: not valid JSON ({exc})") from None
        return cls.from_dict(data, source=source)

    def replace(self, **changes: Any) -> PruneConfig:
        """A copy with ``changes`` applied (validated again)."""
        data = self.to_dict()
        unknown = sorted(set(changes) - set(data))
        if unknown:
            raise ConfigError(f"PruneConfig has no fields {unknown}")
        data.update(changes)
        return PruneConfig.from_dict(data)


# Fields that may differ when a run is resumed: they only decide when to stop or where to run.
RESUMABLE_CHANGES = (
    "max_iterations",
    "max_pruned_fraction",
    "targets",
    "metric_floor",
    "max_metric_drop",
    "recovery",
    "collapse_ratio",
    "final_finetune",
    "measure_latency",
    "latency",
    "device",
)
