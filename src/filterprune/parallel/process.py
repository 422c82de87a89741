"""Process-group primitives: who am I, joining, waiting, broadcasting, seeding samplers.

Every function works without an initialised process group (one process): the collectives become
no-ops and the queries answer as for a single process. Importing this module initialises nothing.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from ..errors import SetupError

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_TIMEOUT = timedelta(minutes=5)


# ----- process-group queries ---------------------------------------------------------------------
def is_distributed() -> bool:
    """True when ``torch.distributed`` is available and a default process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def process_index() -> int:
    """This process's global rank in the default group (0 without a process group)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of processes in the default group (1 without a process group)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """True on global rank 0, and always without a process group."""
    return process_index() == 0


def local_process_index() -> int:
    """This process's index on its node (``LOCAL_RANK``, set by torchrun; 0 otherwise)."""
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
        torch.cuda.set_device(local_process_index())
    kwargs = {} if timeout is None else {"timeout": as_timedelta(timeout)}
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


def as_timedelta(timeout: float | timedelta) -> timedelta:
    return timeout if isinstance(timeout, timedelta) else timedelta(seconds=float(timeout))
