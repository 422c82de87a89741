"""Pause Python's cyclic garbage collector around allocation-heavy bookkeeping.

Tracing and surgery create many short-lived Python objects (labels, index lists, module copies).
Each batch of allocations can trigger a full collection whose cost grows with everything else the
process holds (the user's models, datasets), so on a busy heap the collector took half of the
graph-building time. Nothing made in these steps needs the cycle collector to be freed on time;
it runs again, as usual, once the step ends.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the cyclic collector for the block (a no-op when it is already disabled)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
