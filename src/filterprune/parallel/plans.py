"""Plans across ranks: every rank must apply the same plan, or the replicas diverge."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

import torch.distributed as dist

from ..errors import FilterpruneError
from ..plan import Plan
from .process import DEFAULT_TIMEOUT, as_timedelta, is_distributed, process_index, world_size


class DistributedMismatchError(FilterpruneError, RuntimeError):
    """Ranks disagree (different plans) or did not all reach the same collective in time.

    Attributes:
        ranks: The ranks whose plan differs from rank 0's (empty when unknown, e.g. on a timeout).
        group: The first group whose removed channels differ, if the groups differ at all.
    """

    def __init__(self, message: str, *, ranks: list[int] | None = None, group: str | None = None):
        super().__init__(message)
        self.ranks = list(ranks or [])
        self.group = group


def _canonical(plan: Plan) -> dict[str, Any]:
    data = plan.to_dict()
    for key in ("removed_outputs", "removed_inputs", "groups"):  # index sets: order is irrelevant
        data[key] = {name: sorted(idx) for name, idx in data[key].items()}
    return data


def _sha(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def plan_digest(plan: Plan) -> str:
    """SHA-256 (hex) of the plan's canonical JSON: sorted keys, sorted index lists."""
    return _sha(_canonical(plan))


def _summary(plan: Plan) -> dict[str, Any]:
    """What ranks exchange: the digest, a digest per section and, per group, (count, digest)."""
    data = _canonical(plan)
    return {
        "digest": _sha(data),
        "sections": {k: _sha(v) for k, v in data.items()},
        "groups": {g: (len(idx), _sha(idx)) for g, idx in data["groups"].items()},
    }


def check_same_plan(plan: Plan, *, timeout: float | timedelta = DEFAULT_TIMEOUT) -> str:
    """Check that every rank holds the same plan; raise :class:`DistributedMismatchError` if not.

    **Every rank must call this**, once per pruning step, at the same point (right after the
    removal). A rank that never calls it makes the others fail after ``timeout`` instead of
    hanging. The exchange runs on a short-lived gloo group created with ``timeout``, whatever the
    default backend is (nccl included), so it needs no device and is bounded on every rank.

    Args:
        plan: The plan this rank applied.
        timeout: Seconds (or a ``timedelta``) to wait for the other ranks.

    Returns:
        The plan's digest (see :func:`plan_digest`); without a process group, just the digest.

    Raises:
        DistributedMismatchError: On every rank, when some rank's plan differs from rank 0's (the
            message names those ranks and the first differing group), or when not every rank
            reached this call within ``timeout``.
    """
    mine = _summary(plan)
    if not is_distributed():
        return mine["digest"]
    timeout = as_timedelta(timeout)
    seconds = f"{timeout.total_seconds():g}s"
    try:
        group = dist.new_group(backend="gloo", timeout=timeout)
    except RuntimeError as exc:
        raise DistributedMismatchError(
            f"rank {process_index()}: not every rank reached check_same_plan within {seconds} ({exc}); "
            "every rank must call it after the same prune step"
        ) from exc
    try:
        try:
            dist.monitored_barrier(group=group, timeout=timeout, wait_all_ranks=True)
        except RuntimeError as exc:
            raise DistributedMismatchError(
                f"rank {process_index()}: not every rank reached check_same_plan within {seconds}: {exc}; "
                "every rank must call it after the same prune step"
            ) from exc
        gathered: list[Any] = [None] * world_size()
        dist.all_gather_object(gathered, mine, group=group)
    finally:
        dist.destroy_process_group(group)
    _raise_on_mismatch(gathered)
    return mine["digest"]


def _raise_on_mismatch(summaries: list[dict[str, Any]]) -> None:
    ref = summaries[0]
    bad = [r for r, s in enumerate(summaries) if s["digest"] != ref["digest"]]
    if not bad:
        return
    group = None
    names = sorted({g for r in [0, *bad] for g in summaries[r]["groups"]})
    for name in names:
        if any(summaries[r]["groups"].get(name) != ref["groups"].get(name) for r in bad):
            group = name
            break
    if group is not None:
        counts = ", ".join(f"rank {r} removes {_count(summaries[r], group)}" for r in [0, *bad])
        same_count = len({_count(summaries[r], group) for r in [0, *bad]}) == 1
        where = (
            f"first differing group '{group}' ({counts}{', different ones' if same_count else ''})"
        )
    else:
        sections = [
            k for k in ref["sections"] if summaries[bad[0]]["sections"].get(k) != ref["sections"][k]
        ]
        where = (
            f"the groups agree but {', '.join(sections)} differ (do the ranks hold the same model?)"
        )
    raise DistributedMismatchError(
        f"pruning plans differ across ranks: rank(s) {bad} disagree with rank 0; {where}. "
        "Ranks must hold identical models and rank with an all-reducing criterion (or a "
        "data-free one); a plan that differs means the replicas would diverge",
        ranks=bad,
        group=group,
    )


def _count(summary: dict[str, Any], group: str) -> str:
    entry = summary["groups"].get(group)
    return "no channels (group absent)" if entry is None else f"{entry[0]} channels"
