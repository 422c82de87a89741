"""How the pruning loop runs under ``torch.distributed``: one replica per rank, in lock step.

Without a process group every method here returns its input or does nothing, so the loop behaves
exactly as in one process. With one (DDP, e.g. launched by torchrun), every rank runs the whole
loop on its own replica and its own data shard, and:

* the loop keeps the *unwrapped* module for tracing, ranking, counting, evaluation and
  checkpoints, and hands the ``finetune`` callback a ``DistributedDataParallel`` around it
  (:func:`filterprune.distributed.rewrap_ddp`), built anew after every removal because surgery
  replaces parameters; the callback builds its optimizer from that wrapper on every call;
* rank 0's parameters and buffers are copied to every rank at the start and after each
  finetuning (DDP averages gradients, but BatchNorm running statistics are updated from each
  rank's own batches), so that every rank ranks, checkpoints and evaluates the same weights;
* every removal is checked across ranks (:func:`filterprune.distributed.check_same_plan`);
* decisions are rank 0's: its metrics, rows and stop decisions are broadcast;
* only rank 0 writes the run folder, logs and shows progress; a barrier follows its writes.
"""

from __future__ import annotations

from typing import Any, TypeVar

import torch
from torch import nn

from ..parallel import (
    barrier,
    broadcast_object,
    check_same_plan,
    ddp_kwargs_of,
    is_distributed,
    is_main_process,
    rewrap_ddp,
    unwrap,
)
from ..plan import Plan

__all__ = ["Replicas"]

T = TypeVar("T")


class Replicas:
    """The loop's view of the process group, fixed when the loop is built.

    Args:
        model: The model given to the loop; a ``DistributedDataParallel`` lends its constructor
            arguments (``device_ids``, ``find_unused_parameters``, ...) to the wrappers built
            for finetuning.
    """

    def __init__(self, model: nn.Module) -> None:
        self.active = is_distributed()
        ddp = isinstance(model, nn.parallel.DistributedDataParallel)
        self.ddp_kwargs: dict[str, Any] = ddp_kwargs_of(model) if ddp and self.active else {}
        self._wrapper: nn.parallel.DistributedDataParallel | None = None

    @property
    def main(self) -> bool:
        """Whether this rank writes files, logs and shows progress (always in one process)."""
        return not self.active or is_main_process()

    def module(self, model: nn.Module) -> nn.Module:
        """The module the loop works on: ``model`` itself, or the module inside its wrappers."""
        return unwrap(model) if self.active else model

    def for_training(self, module: nn.Module) -> nn.Module:
        """What the ``finetune`` callback gets: ``module``, or a DDP wrapper around it.

        The wrapper is kept until :meth:`forget` (called after every removal) or until the loop
        holds another module (a rollback); building one is a collective (DDP broadcasts rank 0's
        weights and checks that all shapes agree), which every rank reaches at the same point.
        """
        if not self.active:
            return module
        if self._wrapper is None or self._wrapper.module is not module:
            self._wrapper = None  # drop the old wrapper (and its gradient hooks) first
            self._wrapper = rewrap_ddp(module, **self.ddp_kwargs)
        return self._wrapper

    def forget(self) -> None:
        """Drop the DDP wrapper: the module's parameters were replaced (or the run is over)."""
        self._wrapper = None

    @torch.no_grad()
    def sync(self, module: nn.Module) -> None:
        """Copy rank 0's parameters and buffers into every rank's ``module``, in place."""
        if self.active:
            for tensor in module.state_dict().values():
                torch.distributed.broadcast(tensor, src=0)

    def shared(self, value: T) -> T:
        """Rank 0's ``value`` on every rank (``value`` itself in one process)."""
        return broadcast_object(value) if self.active else value

    def check(self, plan: Plan) -> None:
        """Raise on every rank unless all ranks applied ``plan`` (see ``check_same_plan``)."""
        if self.active:
            check_same_plan(plan)

    def barrier(self) -> None:
        """Wait until every rank gets here (after rank 0's writes)."""
        if self.active:
            barrier()
