"""Process-group primitives for pruning under ``torch.distributed``; see :mod:`filterprune.distributed`.

This package stands low (floor 2 in docs/design.md), so that criteria (all-reduced statistics) and
the loop (replicas in lock step) can use it; :mod:`filterprune.distributed` re-exports it together
with :func:`~filterprune.distributed.prune_distributed`, which stands next to :func:`~filterprune.prune`.
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_face

if TYPE_CHECKING:
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

_HOMES = {
    "DistributedMismatchError": ".plans",
    "check_same_plan": ".plans",
    "plan_digest": ".plans",
    "DEFAULT_TIMEOUT": ".process",
    "barrier": ".process",
    "broadcast_object": ".process",
    "init_from_env": ".process",
    "is_distributed": ".process",
    "is_main_process": ".process",
    "local_process_index": ".process",
    "main_process_only": ".process",
    "process_index": ".process",
    "seed_sampler": ".process",
    "world_size": ".process",
    "all_reduce_sums": ".reduce",
    "ddp_kwargs_of": ".wrappers",
    "refuse_sharded": ".wrappers",
    "rewrap_ddp": ".wrappers",
    "unwrap": ".wrappers",
}
__getattr__, __dir__ = lazy_face(__name__, _HOMES)

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
