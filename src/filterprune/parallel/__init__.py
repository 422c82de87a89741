"""Process-group primitives for pruning under ``torch.distributed``; see :mod:`filterprune.distributed`.

This package stands low (floor 2 in docs/design.md), so that criteria (all-reduced statistics) and
the loop (replicas in lock step) can use it; :mod:`filterprune.distributed` re-exports it together
with :func:`~filterprune.distributed.prune_distributed`, which stands next to :func:`~filterprune.prune`.
"""

from .plans import DistributedMismatchError, check_same_plan, plan_digest
from .process import (
    DEFAULT_TIMEOUT,
    barrier,
    broadcast_object,
    init_from_env,
    is_distributed,
    is_main_process,
    local_process_index,
    main_process_only,
    process_index,
    seed_sampler,
    world_size,
)
from .reduce import all_reduce_sums
from .wrappers import ddp_kwargs_of, refuse_sharded, rewrap_ddp, unwrap

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
    "refuse_sharded",
    "rewrap_ddp",
    "seed_sampler",
    "unwrap",
    "world_size",
]
