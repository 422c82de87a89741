"""Summing per-channel statistics over ranks, after checking that the ranks observed alike."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from ..errors import SetupError


def all_reduce_sums(sums: dict[str, torch.Tensor], counts: dict[str, float]):
    """Sum ``sums`` and ``counts`` over all ranks, after checking every rank observed the same.

    The ranks first all-gather their sorted ``(module name, channels)`` lists: one all-reduce per
    module only pairs up if every rank observed the same modules, so a mismatch raises the same
    :class:`RuntimeError` on every rank instead of mixing statistics or hanging.
    """
    names = sorted(sums)
    _check_same_modules([(n, tuple(sums[n].shape)) for n in names])
    if not names:  # the same on every rank: nothing observed, nothing to reduce
        return {}, {}
    reduced = {}
    for n in names:
        t = sums[n].clone()
        dist.all_reduce(t)
        reduced[n] = t
    c = torch.tensor(
        [counts[n] for n in names],
        dtype=torch.float64,
        device=sums[names[0]].device if names else "cpu",
    )
    dist.all_reduce(c)
    return reduced, {n: float(c[i]) for i, n in enumerate(names)}


def _check_same_modules(observed: list[tuple[str, tuple[int, ...]]]) -> None:
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, observed)
    ref = gathered[0]
    bad = [r for r, seen in enumerate(gathered) if seen != ref]
    if not bad:
        return
    first = bad[0]
    mine, theirs = dict(ref), dict(gathered[first])
    only_0 = sorted(set(mine) - set(theirs))
    only_r = sorted(set(theirs) - set(mine))
    shapes = sorted(n for n in set(mine) & set(theirs) if mine[n] != theirs[n])
    details = []
    if only_0:
        details.append(f"only rank 0 observed {_few(only_0)}")
    if only_r:
        details.append(f"only rank {first} observed {_few(only_r)}")
    if shapes:
        n = shapes[0]
        details.append(f"'{n}' has shape {mine[n]} on rank 0 but {theirs[n]} on rank {first}")
    if not mine or not theirs:
        details.append("a rank without ranking batches observes nothing")
    raise SetupError(
        f"ranking statistics cannot be all-reduced: rank(s) {bad} observed other modules than "
        f"rank 0 ({'; '.join(details)}). Every rank must rank the same model, with at least one "
        "ranking batch, and every observed layer must take part in each rank's loss"
    )


def _few(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(f"'{n}'" for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
