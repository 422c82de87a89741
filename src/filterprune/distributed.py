"""Pruning under ``torch.distributed`` (DDP, one process per device, e.g. launched by torchrun).

Every rank holds the same model (DDP keeps the replicas equal) and its own shard of the data.
Pruning stays correct if each rank does the same thing, in the same order:

1. **rank** on its own shard. Data-driven criteria (Taylor, activation statistics) keep per-example
   sums and example counts and all-reduce both (see
   :class:`filterprune.criteria.taylor.ChannelStats`), so every rank gets the mean over all ranks'
   examples, the same scores, and therefore the same plan;
2. **remove** channels from the unwrapped module (:func:`unwrap`), in place;
3. **check** that every rank applied the same plan (:func:`check_same_plan`);
4. **re-wrap** in a new DDP (:func:`rewrap_ddp`): surgery creates new parameter objects, so the old
   wrapper's gradient buckets point at tensors the model no longer uses, and the optimizer (and its
   LR scheduler) must be rebuilt from ``model.parameters()`` too.

:func:`prune_distributed` does 1-4 in one call. Every function here also works without an
initialised process group (one process): the collectives become no-ops. Importing this module does
not initialise anything.

The primitives live in :mod:`filterprune.parallel` (a low floor, which criteria and the loop use);
this module re-exports them beside :func:`prune_distributed`, which stands next to
:func:`filterprune.prune`. ``rank()`` and ``local_rank()`` of 0.1 are now :func:`process_index` and
:func:`local_process_index` ("rank" names channel scoring, :func:`filterprune.rank`); the old
names still work and warn.
"""

from __future__ import annotations

import warnings
from datetime import timedelta
from typing import Any

from torch import nn

from .api import prune
from .parallel import (
    DEFAULT_TIMEOUT,
    DistributedMismatchError,
    all_reduce_sums,
    barrier,
    broadcast_object,
    check_same_plan,
    ddp_kwargs_of,
    init_from_env,
    is_distributed,
    is_main_process,
    local_process_index,
    main_process_only,
    plan_digest,
    process_index,
    refuse_sharded,
    rewrap_ddp,
    seed_sampler,
    unwrap,
    world_size,
)
from .plan import Plan

_RENAMED = {"rank": process_index, "local_rank": local_process_index}


def __getattr__(name: str) -> Any:
    if name in _RENAMED:
        new = _RENAMED[name].__name__
        warnings.warn(
            f"filterprune.distributed.{name}() is now {new}() ('rank' names channel scoring)",
            DeprecationWarning,
            stacklevel=2,
        )
        return _RENAMED[name]
    raise AttributeError(f"module 'filterprune.distributed' has no attribute {name!r}")


def prune_distributed(
    model: nn.Module,
    example_inputs: Any,
    *,
    ddp_kwargs: dict[str, Any] | None = None,
    wrap: bool = True,
    check: bool = True,
    timeout: float | timedelta = DEFAULT_TIMEOUT,
    **prune_kwargs: Any,
) -> tuple[nn.Module, Plan]:
    """:func:`filterprune.prune` for DDP: rank on every shard, remove, check, re-wrap.

    All ranks must call it together with the same arguments, except ``batches``: each rank passes
    its own shard of the ranking data (at least one batch per rank). Data-driven criteria
    all-reduce their statistics, so every rank computes the same plan.

    Args:
        model: A ``DistributedDataParallel`` (or another wrapper :func:`unwrap` knows) or a plain
            module. The inner module is pruned in place.
        example_inputs: Inputs for tracing, on the module's device (a batch of 1 is enough).
        ddp_kwargs: Arguments for the new DDP; by default those of ``model`` if it is a DDP
            (:func:`ddp_kwargs_of`), updated with these.
        wrap: Return a new DDP. ``False`` returns the pruned inner module, for frameworks that
            re-wrap themselves (Lightning, Accelerate).
        check: Run :func:`check_same_plan` after the removal.
        timeout: For :func:`check_same_plan`.
        **prune_kwargs: For :func:`filterprune.prune` (``amount``, ``criterion``, ``batches``,
            ``loss_fn``, ``graph``...).

    Returns:
        ``(model, plan)``: the new DDP wrapper (the pruned module itself without a process group
        or with ``wrap=False``) and the plan applied. Rebuild the optimizer from
        ``model.parameters()``.
    """
    module = unwrap(model)
    refuse_sharded(model, module)
    kwargs = ddp_kwargs_of(model) if isinstance(model, nn.parallel.DistributedDataParallel) else {}
    kwargs.update(ddp_kwargs or {})
    plan = prune(module, example_inputs, **prune_kwargs)
    if check:
        check_same_plan(plan, timeout=timeout)
    if not wrap or not is_distributed():
        return module, plan
    return rewrap_ddp(module, **kwargs), plan


__all__ = [
    "DEFAULT_TIMEOUT",
    "DistributedMismatchError",
    "all_reduce_sums",
    "barrier",
    "broadcast_object",
    "check_same_plan",
    "ddp_kwargs_of",
    "init_from_env",
    "is_distributed",
    "is_main_process",
    "local_process_index",
    "main_process_only",
    "plan_digest",
    "process_index",
    "prune_distributed",
    "refuse_sharded",
    "rewrap_ddp",
    "seed_sampler",
    "unwrap",
    "world_size",
]
