"""One registry behaviour for every "by name" extension point (criteria, models, tasks).

A name is registered once: registering it again raises, naming who holds it, unless the same
object is registered again or ``override=True`` says to replace it (e.g. re-running a notebook
cell). An unknown name raises the registry's error type with the known names and how to add one.
"""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


def _describe(obj: object) -> str:
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return f"{module}.{qualname}" if module else qualname


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
    ) -> None:
        self.kind = kind
        self.plural = plural
        self.register_with = register_with
        self.error = error
        self.invalid = invalid
        self.hint = hint
        self._items: dict[str, T] = {}

    def add(self, name: str, obj: T, *, override: bool = False) -> T:
        """Register ``obj`` as ``name``; see the module docstring for duplicates."""
        if not isinstance(name, str) or not name:
            raise self.invalid(
                f"{self.register_with}: name must be a non-empty string, got {name!r}"
            )
        held = self._items.get(name)
        if held is not None and held is not obj and not override:
            raise self.invalid(
                f"{self.register_with}: {self.kind} name {name!r} is already registered by "
                f"{_describe(held)}; pick another name, or pass override=True to replace it"
            )
        self._items[name] = obj
        return obj

    def get(self, name: str) -> T:
        """The object registered as ``name``; raises ``self.error`` listing the known names."""
        try:
            return self._items[name]
        except (KeyError, TypeError):
            known = ", ".join(self.names()) or "(none)"
            raise self.error(
                f"unknown {self.kind} {name!r}; known {self.plural}: {known}. "
                f"Register your own with {self.register_with}"
                + (f", {self.hint}." if self.hint else ".")
            ) from None

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items
