"""Loop callbacks from a :class:`filterprune.tasks.Task` and its data loaders.

>>> hooks = task_callbacks("classify", train_loader, val_loader, lr=0.01)   # doctest: +SKIP
>>> run_pruning(model, example, config=config, **hooks.as_kwargs())       # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..config import Budget
from ..parallel import seed_sampler

__all__ = ["EpochLoader", "TaskCallbacks", "task_callbacks"]


class EpochLoader:
    """``loader``, calling ``set_epoch`` on its ``DistributedSampler`` before every pass.

    Pass ``k`` (from 0) uses epoch ``first_epoch + k``, so each pass gets a new shuffle, the same
    on every rank. Any other loader is iterated unchanged. The loop passes its ``start_step``
    (epochs done with an epoch budget, steps done with a step budget, and a pass takes at least
    one step), so no two passes of a run share an epoch, and a resumed run uses the epochs of an
    uninterrupted one.
    """

    def __init__(self, loader: Iterable[Any], first_epoch: int = 0) -> None:
        self.loader, self.epoch = loader, first_epoch

    def __iter__(self) -> Iterator[Any]:
        seed_sampler(self.loader, self.epoch)
        self.epoch += 1
        return iter(self.loader)

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]


@dataclass(frozen=True)
class TaskCallbacks:
    """The four callbacks :func:`filterprune.loop.run_pruning` takes, plus the task's metric."""

    finetune: Callable[[nn.Module, int, Budget], int]
    evaluate: Callable[[nn.Module], Mapping[str, float]]
    batches: Callable[[], Iterable[Any]]
    loss_fn: Callable[[Any, Any], torch.Tensor]
    metric: str
    higher_is_better: bool

    def as_kwargs(self) -> dict[str, Any]:
        return {
            "finetune": self.finetune,
            "evaluate": self.evaluate,
            "batches": self.batches,
            "loss_fn": self.loss_fn,
        }


def task_callbacks(
    task: Any,
    train_loader: Iterable[Any],
    val_loader: Iterable[Any],
    *,
    lr: float = 0.01,
    optimizer: str = "sgd",
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    final_lr: float | None = None,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> TaskCallbacks:
    """Callbacks that finetune with the task's loss and evaluate with its metrics.

    Args:
        task: A :class:`filterprune.tasks.Task` or its registered name (``"classify"``,
            ``"segment"``).
        train_loader: ``(inputs, targets)`` batches for finetuning and ranking; under
            ``torch.distributed``, this rank's shard (a ``DistributedSampler``, reseeded per pass
            and per ranking).
        val_loader: Batches for evaluation.
        lr, optimizer, momentum, weight_decay: Finetuning settings; a new optimizer is built on
            every call (pruning replaces the parameters). The rate stays constant.
        final_lr: The final finetuning (``budget.final``, after the last removal) starts at
            this rate and decays it to 0 along a cosine over its budget, a short retraining
            rather than a touch-up; ``None``: it runs like the others, at ``lr``.
        device: Where batches are moved.
        progress: Show tqdm bars while finetuning.
    """
    if isinstance(task, str):
        from ..tasks import get_task

        task = get_task(task)

    def finetune(model: nn.Module, start_step: int, budget: Budget) -> int:
        retrain = budget.final and final_lr is not None  # the final phase: from final_lr, cosine
        return task.finetune(
            model,  # a new DDP wrapper after every removal under torch.distributed
            EpochLoader(train_loader, first_epoch=start_step),
            steps=budget.steps,
            epochs=budget.epochs,
            lr=final_lr if retrain else lr,
            schedule="cosine" if retrain else "constant",
            optimizer=optimizer,
            momentum=momentum,
            weight_decay=weight_decay,
            device=device,
            progress=progress,
        )

    def evaluate(model: nn.Module) -> Mapping[str, float]:
        return task.evaluate(model, val_loader, device=device, progress=progress)

    def batches() -> Iterator[Any]:
        # a DistributedSampler gets a new shuffle per ranking, the same on every rank: the loop
        # seeds torch from (seed, iteration) first. Other loaders are left alone.
        seed_sampler(train_loader, torch.initial_seed() % 2**31)
        return iter(train_loader)

    return TaskCallbacks(
        finetune=finetune,
        evaluate=evaluate,
        batches=batches,
        loss_fn=task.loss,
        metric=task.primary_metric,
        higher_is_better=task.higher_is_better,
    )
