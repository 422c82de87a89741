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
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from .api import prune
from .errors import FilterpruneError, SetupError
from .plan import Plan

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_TIMEOUT = timedelta(minutes=5)

# Wrappers whose ``.module`` is the user's model, by class name (no optional imports needed).
_MODULE_WRAPPERS = ("FullyShardedDataParallel", "DeepSpeedEngine")
# DDP constructor arguments that prune_distributed copies from the old wrapper to the new one.
_COPIED_DDP_ARGS = (
    "device_ids",
    "output_device",
    "dim",
    "process_group",
    "broadcast_buffers",  # torch < 2.13; later versions name it forward_sync_buffers
    "forward_sync_buffers",
    "find_unused_parameters",
    "gradient_as_bucket_view",
    "static_graph",
    "mixed_precision",
)


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


# ----- process-group queries ---------------------------------------------------------------------
def is_distributed() -> bool:
    """True when ``torch.distributed`` is available and a default process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's global rank (0 without a process group). Not :func:`filterprune.rank`."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of processes in the default group (1 without a process group)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """True on global rank 0, and always without a process group."""
    return rank() == 0


def local_rank() -> int:
    """This process's rank on its node (``LOCAL_RANK``, set by torchrun; 0 otherwise)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def init_from_env(*, backend: str | None = None, timeout: float | timedelta | None = None) -> bool:
    """Join the process group that torchrun describes in the environment, if there is one.

    Reads ``WORLD_SIZE``, ``RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` (``env://``). Does nothing
    when a group is already initialised, or when ``WORLD_SIZE`` is unset or 1.

    Args:
        backend: ``"nccl"`` or ``"gloo"``; by default nccl when CUDA is available (then the
            current CUDA device is set to ``LOCAL_RANK``), gloo otherwise.
        timeout: Seconds (or a ``timedelta``) for joining and for every collective; by default
            torch's. Ranks wait this long for each other, e.g. while rank 0 alone evaluates.

    Returns:
        Whether this process now runs distributed.
    """
    if is_distributed():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise SetupError(
            f"WORLD_SIZE={os.environ['WORLD_SIZE']} but {', '.join(missing)} not set; launch with "
            "torchrun (e.g. torchrun --nproc-per-node 2 script.py) or set them yourself"
        )
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank())
    kwargs = {} if timeout is None else {"timeout": _as_timedelta(timeout)}
    dist.init_process_group(backend, init_method="env://", **kwargs)
    return True


def barrier() -> None:
    """Wait for every rank (a no-op without a process group)."""
    if is_distributed():
        dist.barrier()


def broadcast_object(obj: Any, *, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (any picklable object; ``obj`` itself without a group).

    Use it for decisions that must be identical everywhere, e.g. whether an iteration is accepted
    when only rank 0 evaluates. On nccl, the current CUDA device must be set (see
    :func:`init_from_env`).
    """
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def main_process_only(fn: F) -> F:
    """Decorator: run ``fn`` on rank 0 only; other ranks skip it and get ``None``.

    Use it for writes (checkpoints, plans, reports) so that ranks do not race on the same file.
    It does not synchronise: call :func:`barrier` afterwards if other ranks read what was written.

    Example::

        @main_process_only
        def save(model, path):
            torch.save(model.state_dict(), path)
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs) if is_main_process() else None

    return wrapper  # type: ignore[return-value]


def seed_sampler(sampler: Any, epoch: int) -> bool:
    """Call ``set_epoch(epoch)`` on a ``DistributedSampler`` so each epoch gets a new shuffle.

    Args:
        sampler: A sampler with ``set_epoch`` (``DistributedSampler``) or a ``DataLoader`` whose
            ``sampler`` or ``batch_sampler.sampler`` has one. Anything else is left alone.
        epoch: The epoch number; every rank must pass the same one.

    Returns:
        Whether a ``set_epoch`` was called.
    """
    candidates = (
        sampler,
        getattr(sampler, "sampler", None),
        getattr(getattr(sampler, "batch_sampler", None), "sampler", None),
    )
    for candidate in candidates:
        if callable(getattr(candidate, "set_epoch", None)):
            candidate.set_epoch(epoch)
            return True
    return False


# ----- plans across ranks ------------------------------------------------------------------------
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


def _as_timedelta(timeout: float | timedelta) -> timedelta:
    return timeout if isinstance(timeout, timedelta) else timedelta(seconds=float(timeout))


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
    timeout = _as_timedelta(timeout)
    seconds = f"{timeout.total_seconds():g}s"
    try:
        group = dist.new_group(backend="gloo", timeout=timeout)
    except RuntimeError as exc:
        raise DistributedMismatchError(
            f"rank {rank()}: not every rank reached check_same_plan within {seconds} ({exc}); "
            "every rank must call it after the same prune step"
        ) from exc
    try:
        try:
            dist.monitored_barrier(group=group, timeout=timeout, wait_all_ranks=True)
        except RuntimeError as exc:
            raise DistributedMismatchError(
                f"rank {rank()}: not every rank reached check_same_plan within {seconds}: {exc}; "
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


# ----- wrappers ----------------------------------------------------------------------------------
def unwrap(model: nn.Module) -> nn.Module:
    """The user's module inside DDP, ``DataParallel``, FSDP, DeepSpeed or ``torch.compile``.

    Wrappers nest (``torch.compile(DDP(model))``); all layers are removed. A plain module is
    returned as is.
    """
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)) or (
            type(model).__name__ in _MODULE_WRAPPERS
            and isinstance(getattr(model, "module", None), nn.Module)
        ):
            model = model.module
        elif type(model).__name__ == "OptimizedModule" and hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def ddp_kwargs_of(ddp: nn.parallel.DistributedDataParallel) -> dict[str, Any]:
    """Constructor arguments of an existing DDP wrapper, to build an equal one after surgery.

    Copies ``device_ids``, ``output_device``, ``dim``, ``process_group``, buffer syncing,
    ``find_unused_parameters``, ``gradient_as_bucket_view``, ``static_graph`` and
    ``mixed_precision`` where this torch version has them. Not copied: bucket sizes, and
    communication hooks (register those again on the new wrapper).
    """
    accepted = inspect.signature(nn.parallel.DistributedDataParallel.__init__).parameters
    kwargs = {
        name: getattr(ddp, name)
        for name in _COPIED_DDP_ARGS
        if name in accepted and hasattr(ddp, name)
    }
    if "forward_sync_buffers" in kwargs:  # the newer name; passing both warns
        kwargs.pop("broadcast_buffers", None)
    if kwargs.get("mixed_precision") is None:
        kwargs.pop("mixed_precision", None)
    return kwargs


def _default_ddp_kwargs(module: nn.Module) -> dict[str, Any]:
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    return {"device_ids": [device.index]} if device.type == "cuda" else {}


def rewrap_ddp(module: nn.Module, **ddp_kwargs: Any) -> nn.parallel.DistributedDataParallel:
    """Wrap a (pruned) module in a new ``DistributedDataParallel``.

    Call this after every removal: surgery replaces parameters with new tensors, so the old
    wrapper would silently stop averaging their gradients. Rebuild the optimizer (and LR scheduler)
    from the new wrapper's parameters as well; optimizer state for removed channels is gone.
    DDP broadcasts rank 0's parameters and buffers and checks that every rank's parameter shapes
    agree when it is built, so all ranks must call this together.

    Args:
        module: The unwrapped, pruned module (already on its device).
        **ddp_kwargs: ``DistributedDataParallel`` arguments (``device_ids`` defaults to the
            module's CUDA device, or none on CPU); see :func:`ddp_kwargs_of`.
    """
    if not is_distributed():
        raise SetupError(
            "rewrap_ddp needs an initialised process group (torch.distributed.init_process_group, "
            "or launch with torchrun); without one, use the unwrapped module directly"
        )
    module = unwrap(module)
    kwargs = {**_default_ddp_kwargs(module), **ddp_kwargs}
    return nn.parallel.DistributedDataParallel(module, **kwargs)


def _refuse_sharded(model: nn.Module, module: nn.Module) -> None:
    """FSDP (1: flat parameters; 2: DTensor shards) holds no whole weights to cut channels from."""
    sharded = any(
        type(m).__name__ == "FullyShardedDataParallel" for m in (model, *module.modules())
    )
    if not sharded:
        try:
            from torch.distributed.tensor import DTensor
        except ImportError:  # torch built without distributed
            DTensor = None
        sharded = DTensor is not None and any(isinstance(p, DTensor) for p in module.parameters())
    if sharded:
        raise TypeError(
            f"{type(model).__name__}: FSDP shards parameters, and channel surgery needs whole "
            "tensors; prune an unsharded copy (full state dict) and shard it again, or use DDP"
        )


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
    _refuse_sharded(model, module)
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
    "barrier",
    "broadcast_object",
    "check_same_plan",
    "ddp_kwargs_of",
    "is_distributed",
    "init_from_env",
    "is_main_process",
    "local_rank",
    "main_process_only",
    "plan_digest",
    "prune_distributed",
    "rank",
    "rewrap_ddp",
    "seed_sampler",
    "unwrap",
    "world_size",
]
