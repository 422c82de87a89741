"""The ``Task`` abstraction: loss, evaluation, finetuning and built-in data for one kind of problem.

Tasks are looked up by name in a registry (``"classify"``, ``"segment"``, ``"detect"``); add one with
``@register_task("name")`` on a :class:`Task` subclass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.data import Dataset

from filterprune._registry import Registry
from filterprune.tasks._deps import progress_bar
from filterprune.tasks.trainer import FinetuneConfig, finetune, move_batch

from .._modes import restore_training, training_flags
from ..errors import ConfigError, UnknownNameError

_TASKS: Registry[type[Task]] = Registry(
    "task",
    "tasks",
    register_with="filterprune.tasks.register_task",
    error=UnknownNameError,
    invalid=ConfigError,
)


def register_task(name: str, *, override: bool = False) -> Callable[[type[Task]], type[Task]]:
    """Class decorator that registers a :class:`Task` subclass under ``name``.

    Raises:
        ValueError: ``name`` is taken by another class and ``override`` is false.
    """

    def decorate(cls: type[Task]) -> type[Task]:
        _TASKS.add(name, cls, override=override)
        cls.name = name
        return cls

    return decorate


def list_tasks() -> list[str]:
    """Names of the registered tasks, sorted."""
    return _TASKS.names()


def get_task(name: str, **options: Any) -> Task:
    """Instantiate the task registered as ``name`` with keyword ``options``.

    Raises:
        KeyError: Unknown name; the message lists the known ones.
    """
    return _TASKS.get(name)(**options)


def builtin_data(task_name: str, *, seed: int = 0, **options: Any) -> tuple[Dataset, Dataset]:
    """Built-in ``(train, val)`` datasets of a task; nothing is downloaded.

    ``"segment"``: synthetic Carvana-like cars split by car
    (options ``image_size=64, num_cars=64, views_per_car=8, val_fraction=0.2``).
    ``"classify"``: scikit-learn digits at 32x32 RGB (options ``image_size=32, val_fraction=0.2``).
    """
    return get_task(task_name).builtin_data(seed=seed, **options)


def primary_output(output: Any) -> torch.Tensor:
    """The main prediction of a model output: a tensor, ``output["out"]`` or ``output[0]``."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, dict) and "out" in output:
        return output["out"]
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise TypeError(
        f"model output of type {type(output).__name__} is not understood; return a tensor, "
        "a dict with key 'out', or a tuple whose first item is the prediction."
    )


class Task:
    """Base class of tasks. Subclasses set the class attributes and implement the hooks.

    Attributes:
        name: Registry name (set by :func:`register_task`).
        primary_metric: Key of :meth:`evaluate`'s result used to compare models.
        higher_is_better: Whether a larger ``primary_metric`` is better.
    """

    name: ClassVar[str] = ""
    primary_metric: ClassVar[str] = ""
    higher_is_better: ClassVar[bool] = True

    # -- hooks for subclasses -------------------------------------------------------------
    def align(
        self, output: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Bring prediction and target to the shapes the loss and metrics expect."""
        return output, target

    def compute_loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar batch-mean loss of aligned prediction and target."""
        raise NotImplementedError

    def make_meter(self) -> Any:
        """A fresh meter with ``update(pred, target, *, loss)`` and ``compute() -> dict``."""
        raise NotImplementedError

    def builtin_data(self, *, seed: int = 0, **options: Any) -> tuple[Dataset, Dataset]:
        """Built-in ``(train, val)`` datasets."""
        raise NotImplementedError(f"task {self.name!r} has no built-in data.")

    def prediction(self, output: Any) -> Any:
        """What the loss and metrics read from a raw model output (default: the main tensor).

        A task whose model returns several tensors (a detector's maps, one per scale) keeps them.
        """
        return primary_output(output)

    # -- shared behaviour -----------------------------------------------------------------
    def loss(self, output: Any, target: torch.Tensor) -> torch.Tensor:
        """Loss of a raw model output (tensor, dict with 'out', or tuple) against ``target``."""
        return self.compute_loss(*self.align(self.prediction(output), target))

    def is_better(self, new: float, old: float) -> bool:
        """Whether primary-metric value ``new`` beats ``old``."""
        return new > old if self.higher_is_better else new < old

    @torch.no_grad()
    def evaluate(
        self,
        model: nn.Module,
        loader: Iterable,
        *,
        device: torch.device | str = "cpu",
        progress: bool = True,
    ) -> dict[str, float]:
        """Average metrics and loss over every sample of ``loader``.

        The model is moved to ``device`` and left there; its train/eval mode is restored.
        ``progress``: a bar on a terminal, else a line every 10 s of a long pass (see
        :mod:`filterprune._progress`); ``False`` is silent.

        Returns:
            e.g. ``{"accuracy": 0.97, "top5": 1.0, "loss": 0.1}`` or
            ``{"dice": 0.95, "iou": 0.91, "loss": 0.05}``.
        """
        model.to(device)
        was_training = training_flags(model)
        model.eval()
        meter = self.make_meter()
        try:
            for inputs, targets in progress_bar(
                loader, enabled=progress, desc=f"evaluate {self.name}"
            ):
                inputs, targets = move_batch(inputs, device), move_batch(targets, device)
                output, target = self.align(self.prediction(model(inputs)), targets)
                meter.update(output, target, loss=self.compute_loss(output, target).item())
        finally:
            restore_training(was_training)
        return meter.compute()

    def finetune(
        self,
        model: nn.Module,
        loader: Iterable,
        *,
        steps: int | None = None,
        epochs: int | None = None,
        lr: float = 0.01,
        optimizer: str = "sgd",
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        max_grad_norm: float | None = None,
        schedule: str = "constant",
        device: torch.device | str = "cpu",
        progress: bool = True,
    ) -> int:
        """Train ``model`` in place with this task's loss; see :func:`filterprune.tasks.finetune`.

        Exactly one of ``steps`` / ``epochs`` must be given. Returns the number of steps done.
        """
        config = FinetuneConfig(
            steps=steps,
            epochs=epochs,
            lr=lr,
            optimizer=optimizer,
            momentum=momentum,
            weight_decay=weight_decay,
            max_grad_norm=max_grad_norm,
            schedule=schedule,
        )
        return finetune(
            model, loader, loss_fn=self.loss, config=config, device=device, progress=progress
        )
