"""Channel elements and the union-find that couples them.

Every channel position of every traced activation is labelled with an *element* id. Two elements
that must be removed together (channel ``i`` of both inputs of a residual add, the input and output
channel ``i`` of a depthwise conv, ...) are merged. A merged set is a *class*: the unit of removal.
A class can be *frozen*, with human-readable reasons, when removing it would change behaviour that
is fixed in code (model outputs, constant slicing, unknown ops).

Element ``0`` is reserved for "untracked": a position with no prunable origin (model inputs,
constants created in ``forward``). It is never merged and never removed.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

UNTRACKED = 0


class ElementSets:
    """Union-find over channel elements, with freeze reasons attached to each class."""

    def __init__(self) -> None:
        self._parent: list[int] = [UNTRACKED]
        self._reasons: dict[int, list[str]] = {}

    def __len__(self) -> int:
        return len(self._parent)

    def new(self, n: int) -> list[int]:
        """Allocate ``n`` fresh, unmerged elements and return their ids."""
        start = len(self._parent)
        self._parent.extend(range(start, start + n))
        return list(range(start, start + n))

    def find(self, x: int) -> int:
        parent = self._parent
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    def roots(self) -> torch.Tensor:
        """The class root of every element, as one int64 tensor (element id -> root id)."""
        parent = torch.tensor(self._parent, dtype=torch.long)
        while True:  # pointer jumping: the depth halves at every step
            up = parent[parent]
            if torch.equal(up, parent):
                return parent
            parent = up

    def union(self, a: int, b: int) -> None:
        """Merge the classes of ``a`` and ``b``; untracked elements are never merged."""
        self.union_pairs(((a, b),))

    def union_pairs(self, pairs: Iterable[tuple[int, int]]) -> None:
        """Merge the classes of each pair ``(a, b)`` (the hot loop of residual adds: kept lean).

        The lower root id becomes the root; freeze reasons move with the merged class.
        """
        find, parent, reasons = self.find, self._parent, self._reasons
        for a, b in pairs:
            if a == UNTRACKED or b == UNTRACKED:
                continue
            ra, rb = find(a), find(b)
            if ra == rb:
                continue
            if rb < ra:
                ra, rb = rb, ra
            parent[rb] = ra
            moved = reasons.pop(rb, None)
            if moved:
                kept = reasons.setdefault(ra, [])
                kept.extend(r for r in moved if r not in kept)

    def freeze(self, x: int, reason: str) -> None:
        """Mark the class of ``x`` as not removable, recording why."""
        if x == UNTRACKED:
            return
        reasons = self._reasons.setdefault(self.find(x), [])
        if reason not in reasons:
            reasons.append(reason)

    def thaw(self, reason: str) -> None:
        """Withdraw ``reason`` from every class; a class left without reasons is prunable."""
        for root in [r for r, texts in self._reasons.items() if reason in texts]:
            texts = [t for t in self._reasons[root] if t != reason]
            if texts:
                self._reasons[root] = texts
            else:
                del self._reasons[root]

    def reasons(self, x: int) -> list[str]:
        if x == UNTRACKED:
            return ["untracked channel (model input or constant)"]
        return list(self._reasons.get(self.find(x), ()))

    def frozen_elements(self) -> list[int]:
        """One element of every frozen class (its root when the reasons were recorded)."""
        return list(self._reasons)

    def is_frozen(self, x: int) -> bool:
        return x == UNTRACKED or self.find(x) in self._reasons
