"""One registry behaviour for every "by name" extension point (criteria, models, tasks, op rules,
and layer specs, whose names are module types).

A name is registered once: registering it again raises, naming who holds it, unless the same
object is registered again or ``override=True`` says to replace it (e.g. re-running a notebook
cell). An unknown name raises the registry's error type with the known names and how to add one.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


def _describe(obj: object) -> str:
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return f"{module}.{qualname}" if module else qualname


def _label(name: object) -> str:
    """A name as messages write it: a string quoted, a type by its qualified name."""
    return _describe(name) if isinstance(name, type) else repr(name)


class Registry(Generic[T]):
    """Objects by name.

    Args:
        kind: What is registered, singular (``"criterion"``); used in messages.
        plural: Its plural (``"criteria"``).
        register_with: The decorator that adds one, for messages (``"filterprune.register_criterion"``).
        error: The exception type raised for an unknown name.
        invalid: The exception type raised for a bad or duplicate name (callers pass
            filterprune's own types; this floor imports nothing of filterprune).
        hint: More ways to name an object, appended to the unknown-name message.
        keys: What a name is: ``str`` (the default), or ``type`` for objects registered by
            class (layer specs by module type).
    """

    def __init__(
        self,
        kind: str,
        plural: str,
        *,
        register_with: str,
        error: type[Exception] = ValueError,
        invalid: type[Exception] = ValueError,
        hint: str = "",
        keys: type = str,
    ) -> None:
        self.kind = kind
        self.plural = plural
        self.register_with = register_with
        self.error = error
        self.invalid = invalid
        self.hint = hint
        self.keys = keys
        self._items: dict[Hashable, T] = {}

    def add(self, name: Hashable, obj: T, *, override: bool = False) -> T:
        """Register ``obj`` as ``name``; see the module docstring for duplicates."""
        if not isinstance(name, self.keys) or name == "":
            what = "a non-empty string" if self.keys is str else f"a {self.keys.__name__}"
            raise self.invalid(f"{self.register_with}: name must be {what}, got {name!r}")
        held = self._items.get(name)
        if held is not None and held is not obj and not override:
            what = f"name {name!r}" if isinstance(name, str) else _label(name)
            raise self.invalid(
                f"{self.register_with}: {self.kind} {what} is already registered by "
                f"{_describe(held)}; pick another name, or pass override=True to replace it"
            )
        self._items[name] = obj
        return obj

    def get(self, name: Hashable) -> T:
        """The object registered as ``name``; raises ``self.error`` listing the known names."""
        try:
            return self._items[name]
        except (KeyError, TypeError):
            known = ", ".join(n if isinstance(n, str) else _label(n) for n in self.names())
            known = known or "(none)"
            raise self.error(
                f"unknown {self.kind} {_label(name)}; known {self.plural}: {known}. "
                f"Register your own with {self.register_with}"
                + (f", {self.hint}." if self.hint else ".")
            ) from None

    def find(self, name: Hashable) -> T | None:
        """The object registered as ``name``, or ``None``."""
        return self._items.get(name)

    def remove(self, name: Hashable) -> T | None:
        """Unregister ``name`` (e.g. a test's own); returns what it held, or ``None``."""
        return self._items.pop(name, None)

    def names(self) -> list:
        """The registered names, sorted (types by their qualified names)."""
        return sorted(self._items, key=lambda n: n if isinstance(n, str) else _label(n))

    def items(self) -> Iterator[tuple[Hashable, T]]:
        """``(name, object)`` pairs, in registration order."""
        return iter(list(self._items.items()))

    def __contains__(self, name: object) -> bool:
        return name in self._items
