"""Allocation failures as filterprune errors that say what was being done and how much it needed.

torch reports a failed CPU allocation as a ``RuntimeError`` ("DefaultCPUAllocator: can't
allocate memory: you tried to allocate 43200000000 bytes"), not as a ``MemoryError``; a CUDA one
as ``torch.OutOfMemoryError``. :func:`is_allocation_failure` recognises all of them (and a size
too large to compute, "Storage size calculation overflowed"); :func:`doing` turns one raised in
its block into :class:`~filterprune.errors.AllocationError` naming the step and the size. The
command line does the same for any step without a :func:`doing` of its own.

Ground floor: imports only :mod:`filterprune.errors` (no torch).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import AllocationError, FilterpruneError

__all__ = ["allocation_message", "doing", "human_bytes", "is_allocation_failure"]

_MARKERS = (
    "can't allocate memory",
    "cannot allocate memory",
    "out of memory",
    "not enough memory",
    "storage size calculation overflowed",
    "defaultcpuallocator",
)
_BYTES = re.compile(r"allocate (\d+) bytes")
_GIB = re.compile(r"allocate (\d+(?:\.\d+)?) ([KMGT]i?B)")


def is_allocation_failure(exc: BaseException) -> bool:
    """Whether ``exc`` says that memory could not be allocated (and is not filterprune's own)."""
    if isinstance(exc, FilterpruneError):
        return False
    if isinstance(exc, MemoryError):  # includes torch.OutOfMemoryError
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(marker in text for marker in _MARKERS)


def human_bytes(n: float) -> str:
    """``43200000000`` -> ``'43.2 GB'``."""
    for unit in ("bytes", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def _size(exc: BaseException) -> str | None:
    text = str(exc)
    found = _BYTES.search(text)
    if found:
        return human_bytes(int(found[1]))
    found = _GIB.search(text)
    if found:
        return f"{found[1]} {found[2]}"
    if "overflowed" in text.lower():
        return "more bytes than a 64-bit size can count"
    return None


def allocation_message(exc: BaseException, what: str, fix: str) -> str:
    """One line: out of memory while ``what`` (the size asked for); ``fix``."""
    size = _size(exc)
    asked = f"it asked for {size} at once" if size else " ".join(str(exc).split())[:200]
    return f"out of memory while {what} ({asked}); {fix}"


@contextmanager
def doing(what: str, fix: str) -> Iterator[None]:
    """Turn an allocation failure inside the block into :class:`AllocationError`.

    Args:
        what: The step, e.g. ``"building model 'vgg16_bn' with {'width': 1000}"``.
        fix: What to make smaller, e.g. ``"use a smaller width (--model-arg width=...)"``.
    """
    try:
        yield
    except AllocationError:
        raise
    except (RuntimeError, MemoryError) as exc:
        if not is_allocation_failure(exc):
            raise
        raise AllocationError(allocation_message(exc, what, fix)) from exc
