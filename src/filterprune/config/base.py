"""What every settings dataclass shares: checks, a JSON round trip, and defaults that know they are.

A field whose default is a :class:`Default` (``flops_reg: float = Default(0.1)``) holds the plain
value after construction, and the object remembers that the user did not set it
(:meth:`SettingsData.is_default`). A rule that adapts a default to the rest of the settings (the
cost term is off in a per-group ranking, see :mod:`filterprune.config.recipe`) can then leave an
explicit choice alone and refuse it instead. A :class:`Default` may also be derived from the other
fields (``Default(derive=...)``); :meth:`SettingsData.replace` derives it again, so a copy with
``include`` set drops the recipe's ``layer_types`` as a fresh object would.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import fields, replace
from typing import Any, NoReturn, TypeVar

from .._numbers import HUGE
from ..errors import ConfigError

__all__ = ["Default", "SettingsData", "fail", "is_int", "is_number", "strings"]

S = TypeVar("S", bound="SettingsData")


class Default:
    """A field default that is remembered as one: a value, or one derived from the other fields."""

    def __init__(self, value: Any = None, *, derive: Callable[[Any], Any] | None = None) -> None:
        self.value, self.derive = value, derive

    def resolve(self, owner: Any) -> Any:
        return self.derive(owner) if self.derive is not None else self.value

    def __repr__(self) -> str:
        return "Default(derived)" if self.derive is not None else f"Default({self.value!r})"


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
    """JSON round trip and remembered defaults, shared by the settings dataclasses.

    Subclasses are frozen dataclasses whose ``__post_init__`` calls :meth:`_fill_defaults` first.
    """

    _defaults: Mapping[str, Default]

    def _fill_defaults(self) -> None:
        """Replace every :class:`Default` by its value; plain ones first, derived ones after."""
        found = {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]
        found = {k: v for k, v in found.items() if isinstance(v, Default)}
        for name, default in sorted(found.items(), key=lambda kv: kv[1].derive is not None):
            object.__setattr__(self, name, default.resolve(self))
        object.__setattr__(self, "_defaults", found)

    def is_default(self, name: str) -> bool:
        """Whether field ``name`` took its default (was not given)."""
        return name in getattr(self, "_defaults", {})

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
        known = [f.name for f in fields(cls)]  # type: ignore[arg-type]
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
        """A copy with ``changes`` applied (checked again); defaults not changed stay defaults."""
        kept = {k: v for k, v in getattr(self, "_defaults", {}).items() if k not in changes}
        return replace(self, **kept, **changes)  # type: ignore[type-var]

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
