"""Loop callbacks from a :class:`filterprune.tasks.Task` and its data loaders.

>>> hooks = task_callbacks("classify", train_loader, val_loader, lr=0.01)   # doctest: +SKIP
>>> run_pruning(model, example, config=config, **hooks.as_kwargs())       # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .config import Budget

__all__ = ["TaskCallbacks", "task_callbacks"]


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
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> TaskCallbacks:
    """Callbacks that finetune with the task's loss and evaluate with its metrics.

    Args:
        task: A :class:`filterprune.tasks.Task` or its registered name (``"classify"``,
            ``"segment"``).
        train_loader: ``(inputs, targets)`` batches for finetuning and ranking.
        val_loader: Batches for evaluation.
        lr, optimizer, momentum, weight_decay: Finetuning settings; a new optimizer is built on
            every call (pruning replaces the parameters).
        device: Where batches are moved.
        progress: Show tqdm bars while finetuning.
    """
    if isinstance(task, str):
        from ..tasks import get_task

        task = get_task(task)

    def finetune(model: nn.Module, start_step: int, budget: Budget) -> int:
        return task.finetune(
            model,
            train_loader,
            steps=budget.steps,
            epochs=budget.epochs,
            lr=lr,
            optimizer=optimizer,
            momentum=momentum,
            weight_decay=weight_decay,
            device=device,
            progress=progress,
        )

    def evaluate(model: nn.Module) -> Mapping[str, float]:
        return task.evaluate(model, val_loader, device=device)

    return TaskCallbacks(
        finetune=finetune,
        evaluate=evaluate,
        batches=lambda: iter(train_loader),
        loss_fn=task.loss,
        metric=task.primary_metric,
        higher_is_better=task.higher_is_better,
    )
