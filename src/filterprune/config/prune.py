"""The configuration of an iterative pruning run: :class:`PruneConfig`, made of small sections.

One iteration ranks the channels, removes some of them, finetunes and evaluates; the run stops
at the first stop condition that holds. Ridurre's loop (Li, Xu & Zhu, IEICE 2018) and Molchanov
et al.'s schedule (ICLR 2017, https://arxiv.org/abs/1611.06440) are both instances: a
per-iteration fraction with a maximum pruned fraction, or a few channels per iteration with a few
finetuning steps in between.

A :class:`PruneConfig` holds four sections and the run's place:

* ``ranking``: a :class:`filterprune.Ranking` (criterion, options, normalisation, cost term,
  batches per ranking), the object :func:`filterprune.prune` takes;
* ``removal``: a :class:`Removal` (amount or schedule, scope, per-layer limits, layer filters);
* ``finetuning``: a :class:`Finetuning` (budget per iteration and at the end, recovery rounds);
* ``stopping``: a :class:`Stopping` (iterations, pruned fraction, targets, metric bounds);
* ``measure_latency``/``latency``, ``seed`` and ``device``.

Every setting also has one flat name (:data:`FLAT`), so ``PruneConfig(criterion="taylor",
amount=0.2, finetune=100)`` and ``config.amount`` work as they did before the sections existed;
flat keywords override the sections' fields. The JSON form (format 2) is nested; format 1 (flat,
as run folders written before the sections hold it) still loads.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, NoReturn

from ..errors import ConfigError
from ..measure.latency_config import LatencyConfig
from .base import SettingsData, is_int
from .ranking import Ranking
from .recipe import resolve_cost, resolve_scope, resolve_widths
from .sections import Budget, Finetuning, Removal, Stopping
from .selection import Selection

__all__ = [
    "DEFAULT_RANKING_BATCHES",
    "FLAT",
    "RESUMABLE_CHANGES",
    "TOP_LEVEL",
    "PruneConfig",
    "flat_names",
]

#: Format 2: nested sections; format 1: one flat object (still read).
CONFIG_FORMAT = 2
READABLE_FORMATS = (1, 2)
#: Batches fed to a data-driven criterion per iteration when ``Ranking.batches`` is ``None``.
DEFAULT_RANKING_BATCHES = 10
SECTIONS: Mapping[str, type[SettingsData]] = {
    "ranking": Ranking,
    "removal": Removal,
    "finetuning": Finetuning,
    "stopping": Stopping,
}
#: Each setting's flat name -> (section, field); the flat names are those of format 1.
FLAT: Mapping[str, tuple[str, str]] = {
    "criterion": ("ranking", "criterion"),
    "criterion_options": ("ranking", "options"),
    "normalize": ("ranking", "normalize"),
    "flops_reg": ("ranking", "flops_reg"),
    "cost": ("ranking", "cost"),
    "ranking_batches": ("ranking", "batches"),
    **{f.name: ("removal", f.name) for f in fields(Removal) if f.name != "max_fraction"},
    "max_layer_fraction": ("removal", "max_fraction"),
    "finetune": ("finetuning", "per_iteration"),
    "finetune_unit": ("finetuning", "unit"),
    "final_finetune": ("finetuning", "final"),
    "recovery": ("finetuning", "recovery"),
    **{f.name: ("stopping", f.name) for f in fields(Stopping)},
}
_FLAT_OF = {place: name for name, place in FLAT.items()}
#: Settings outside the sections (the same name nested and flat).
TOP_LEVEL = ("measure_latency", "latency", "seed", "device")


def _renamed(message: str, section: str) -> str:
    """``Removal.amount: ...`` -> ``PruneConfig.amount: ...``: errors name the flat setting."""
    owner = SECTIONS[section].__name__

    def flat(match: re.Match) -> str:
        name = _FLAT_OF.get((section, match[1]), f"{section}.{match[1]}")
        return f"PruneConfig.{name}{match[2] or ''}"

    message = re.sub(rf"^{owner}\.(\w+)(\[\d+\])?", flat, message)
    return re.sub(rf"^{owner}:", f"PruneConfig.{section}:", message)


def _section(name: str, given: Any, changes: dict[str, Any]) -> Any:
    """Section ``name`` from ``given`` (an object, a dict of its fields or ``None``) + ``changes``."""
    cls = SECTIONS[name]
    try:
        if given is None:
            value = cls(**changes)
        elif isinstance(given, cls):
            value = given.replace(**changes) if changes else given
        elif isinstance(given, Mapping):
            value = cls.from_dict({**given, **changes})
        else:
            raise ConfigError(
                f"PruneConfig.{name}: need a {cls.__name__} or a dict of its fields, got "
                f"{type(given).__name__}"
            )
    except ConfigError as exc:
        raise ConfigError(_renamed(str(exc), name)) from None
    if name == "ranking" and value.batches is None:
        value = value.replace(batches=DEFAULT_RANKING_BATCHES)
    return value


@dataclass(frozen=True, init=False)
class PruneConfig:
    """Everything an iterative pruning run needs besides the model, the data and the callbacks.

    Build it from sections, from flat keywords, or both (flat keywords override the sections)::

        PruneConfig(criterion="taylor", amount=0.2, finetune=100)
        PruneConfig(ranking=Ranking(criterion="taylor"), removal=Removal(amount=0.2),
                    finetuning=Finetuning(per_iteration=100))

    Every flat name (:data:`FLAT`) also reads back: ``config.amount is config.removal.amount``.

    Attributes:
        ranking: How channels are scored each iteration (:class:`filterprune.Ranking`); its
            criterion must be a registered name (the run folder stores it as JSON).
            ``batches``: batches fed to a data-driven criterion per iteration (ignored by
            data-free criteria such as ``"l1"``); ``None`` means
            :data:`DEFAULT_RANKING_BATCHES`. Flat names: ``criterion``,
            ``criterion_options``, ``normalize``, ``flops_reg``, ``cost``, ``ranking_batches``.
        removal: How much each iteration removes, and from where (:class:`Removal`). Flat names:
            its field names (``amount``, ``schedule``, ``scope``, ``max_layer_fraction``,
            ``round_to``, ``min_channels``, ``include``, ``exclude``, ``layer_types``,
            ``layers``).
        finetuning: The finetuning budgets (:class:`Finetuning`). Flat names: ``finetune``
            (``per_iteration``), ``finetune_unit`` (``unit``), ``final_finetune`` (``final``),
            ``recovery``.
        stopping: When the run ends (:class:`Stopping`). Flat names: its field names.
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

    ranking: Ranking = field(default_factory=lambda: Ranking(batches=DEFAULT_RANKING_BATCHES))
    removal: Removal = field(default_factory=Removal)
    finetuning: Finetuning = field(default_factory=Finetuning)
    stopping: Stopping = field(default_factory=Stopping)
    measure_latency: bool = False
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    seed: int = 0
    device: str = "cpu"

    def __init__(
        self,
        *,
        ranking: Ranking | Mapping[str, Any] | None = None,
        removal: Removal | Mapping[str, Any] | None = None,
        finetuning: Finetuning | Mapping[str, Any] | None = None,
        stopping: Stopping | Mapping[str, Any] | None = None,
        measure_latency: bool = False,
        latency: LatencyConfig | Mapping[str, Any] | None = None,
        seed: int = 0,
        device: str = "cpu",
        **flat: Any,
    ) -> None:
        unknown = sorted(set(flat) - set(FLAT))
        if unknown:
            raise TypeError(
                f"PruneConfig got unexpected keyword arguments {unknown}; sections: "
                f"{', '.join(SECTIONS)}; flat settings: {', '.join(FLAT)}"
            )
        given = {"ranking": ranking, "removal": removal, "finetuning": finetuning}
        given["stopping"] = stopping
        for name in SECTIONS:
            changes = {FLAT[k][1]: v for k, v in flat.items() if FLAT[k][0] == name}
            object.__setattr__(self, name, _section(name, given[name], changes))
        object.__setattr__(self, "measure_latency", measure_latency)
        object.__setattr__(self, "seed", seed)
        object.__setattr__(self, "device", device)
        if latency is None:
            latency = LatencyConfig()
        elif isinstance(latency, Mapping):
            try:
                latency = LatencyConfig.from_dict(latency)
            except ValueError as exc:
                raise ConfigError(f"PruneConfig.latency: {exc}") from None
        elif not isinstance(latency, LatencyConfig):
            _fail("latency", latency, "need a LatencyConfig or a dict of its fields")
        object.__setattr__(self, "latency", latency)
        self._check()

    def _check(self) -> None:
        """The checks that span sections, and those of the top-level settings."""
        if not isinstance(self.ranking.criterion, str):
            _fail(
                "criterion",
                self.ranking.criterion,
                "need a registered criterion name such as 'l1' or 'taylor' (the run folder "
                "stores it as JSON; register an own criterion with filterprune.register_criterion)",
            )
        removal, ranking = resolve_scope(self.removal, self.ranking, owner="PruneConfig")
        ranking = resolve_cost(ranking, self.stopping.targets)
        removal = resolve_widths(removal, self.stopping.targets)
        object.__setattr__(self, "removal", removal)
        object.__setattr__(self, "ranking", ranking)
        if not isinstance(self.measure_latency, bool):
            _fail("measure_latency", self.measure_latency, "need true or false")
        if not is_int(self.seed) or self.seed < 0:
            _fail("seed", self.seed, "need an int >= 0")
        if not isinstance(self.device, str) or not self.device:
            _fail("device", self.device, "need a device name such as 'cpu' or 'cuda'")

    def __getattr__(self, name: str) -> Any:
        place = FLAT.get(name)
        if place is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return getattr(object.__getattribute__(self, place[0]), place[1])

    # ----- derived ---------------------------------------------------------------------------
    @property
    def amounts(self) -> tuple[float | int, ...]:
        """The amounts that may be used: the schedule, or ``(amount,)``."""
        return self.removal.amounts

    def amount_for(self, iteration: int) -> float | int | None:
        """Amount of iteration ``iteration`` (1-based); ``None`` once the schedule is used up."""
        return self.removal.amount_for(iteration)

    def scope_for(self, amount: float | int) -> str:
        """The scope of an iteration removing ``amount`` (``removal.scope``, made concrete)."""
        return self.removal.scope

    @property
    def needs_latency(self) -> bool:
        return self.measure_latency or any(t.quantity == "latency" for t in self.stopping.targets)

    @property
    def watches_metric(self) -> bool:
        return self.stopping.watches_metric

    def selection(self, fraction: float, scope: str) -> Selection:
        """The :class:`filterprune.Selection` of one iteration removing ``fraction`` in ``scope``."""
        return self.removal.selection(fraction, scope)

    def budget(self, final: bool = False) -> Budget:
        """The finetuning budget of an iteration (or the final one), defaults filled in."""
        return self.finetuning.budget(final)

    @classmethod
    def recipe(cls, **changes: Any) -> PruneConfig:
        """The default recipe (:data:`filterprune.config.recipe.RECIPE`, also the defaults of
        ``PruneConfig()``) with ``changes`` on top."""
        return cls(**changes)

    def differences(self, other: PruneConfig) -> list[str]:
        """The flat names of the settings in which ``other`` differs from this config."""
        mine, theirs = self.to_flat_dict(), other.to_flat_dict()
        return [name for name, value in mine.items() if theirs[name] != value]

    # ----- JSON ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": CONFIG_FORMAT}
        out.update({name: getattr(self, name).to_dict() for name in SECTIONS})
        out.update({name: getattr(self, name) for name in TOP_LEVEL})
        out["latency"] = self.latency.to_dict()
        return out

    def to_flat_dict(self) -> dict[str, Any]:
        """Every setting by its flat name, as JSON values (format 1's keys, without ``format``)."""
        nested = self.to_dict()
        flat = {name: nested[section][key] for name, (section, key) in FLAT.items()}
        return {**flat, **{name: nested[name] for name in TOP_LEVEL}}

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "config") -> PruneConfig:
        """Build a config from a dict as :meth:`to_dict` writes it (missing keys: defaults).

        Flat names (format 1, as run folders written before the sections hold them) are read
        too, alone or beside the sections; a flat name overrides its section's field.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: expected a JSON object, got {type(data).__name__}")
        data = dict(data)
        version = data.pop("format", CONFIG_FORMAT)
        if version not in READABLE_FORMATS:
            raise ConfigError(
                f"{source}: config format {version!r} is not supported (this filterprune reads "
                f"formats {', '.join(map(str, READABLE_FORMATS))})"
            )
        known = [*SECTIONS, *TOP_LEVEL, *FLAT]
        unknown = sorted(set(data) - set(known))
        if unknown:
            close = difflib.get_close_matches(unknown[0], known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"{source}: unknown config keys {unknown}{hint}; known keys: the sections "
                f"{', '.join(SECTIONS)}; {', '.join(TOP_LEVEL)}; or the flat names "
                f"{', '.join(FLAT)}"
            )
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
        """A copy with ``changes`` (sections, top-level or flat names) applied, checked again."""
        unknown = sorted(set(changes) - {*SECTIONS, *TOP_LEVEL, *FLAT})
        if unknown:
            raise ConfigError(f"PruneConfig has no fields {unknown}")
        return dataclasses.replace(self, **changes)


def flat_names(data: Mapping[str, Any]) -> set[str]:
    """The flat names of the settings that a config dict (nested, flat or both) sets."""
    names = set()
    for key, value in data.items():
        if key in SECTIONS and isinstance(value, Mapping):
            names |= {_FLAT_OF[(key, f)] for f in value if (key, f) in _FLAT_OF}
        elif key in FLAT or key in TOP_LEVEL:
            names.add(key)
    return names


def _fail(name: str, value: Any, need: str) -> NoReturn:
    raise ConfigError(f"PruneConfig.{name}: {need}, got {value!r}")


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
