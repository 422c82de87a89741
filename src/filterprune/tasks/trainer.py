"""A small built-in finetuning loop (SGD with momentum or Adam) used after pruning."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from filterprune.tasks._deps import progress_bar

from .._modes import restore_training, training_flags
from .._numbers import real_problem
from ..errors import ConfigError, NonFiniteError

LossFn = Callable[[Any, Any], torch.Tensor]
OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "cosine")


class NonFiniteLossError(NonFiniteError):
    """The training loss became NaN or infinite.

    Attributes:
        step: 1-based index of the optimizer step whose loss was not finite.
        loss: The offending loss value.
    """

    def __init__(self, *, step: int, loss: float, lr: float) -> None:
        self.step, self.loss = step, loss
        super().__init__(
            f"finetune: the loss became {loss} at step {step}; no update was applied for that step. "
            f"Lower the learning rate (lr={lr}), check the inputs for NaN/inf, or clip gradients "
            "with max_grad_norm."
        )


@dataclass(frozen=True)
class FinetuneConfig:
    """How long and how to finetune.

    Attributes:
        steps: Number of optimizer steps (the loader is cycled). Exactly one of steps/epochs is set.
        epochs: Number of full passes over the loader.
        lr: Learning rate.
        optimizer: ``"sgd"`` (with ``momentum``) or ``"adam"``.
        momentum: SGD momentum.
        weight_decay: L2 weight decay.
        max_grad_norm: Clip the global gradient norm to this value; ``None`` disables clipping.
        schedule: ``"constant"`` keeps ``lr``; ``"cosine"`` decays it from ``lr`` to 0 along a
            half cosine over the whole budget (needs a loader with a length when ``epochs`` is
            set).
    """

    steps: int | None = None
    epochs: int | None = None
    lr: float = 0.01
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 0.0
    max_grad_norm: float | None = None
    schedule: str = "constant"

    def __post_init__(self) -> None:
        if (self.steps is None) == (self.epochs is None):
            raise ConfigError(
                f"FinetuneConfig: set exactly one of steps or epochs, got steps={self.steps!r}, "
                f"epochs={self.epochs!r}; e.g. steps=200."
            )
        for name in ("steps", "epochs"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ConfigError(f"FinetuneConfig: {name} must be an int >= 0, got {value!r}.")
        for name, limits in (
            ("lr", {"low": 0.0, "low_open": True}),
            ("momentum", {"low": 0.0, "high": 1.0, "high_open": True}),
            ("weight_decay", {"low": 0.0, "high": 1.0}),
        ):
            value = getattr(self, name)
            problem = real_problem(value, **limits)
            if problem is not None:
                raise ConfigError(f"FinetuneConfig.{name}: {problem}, got {value!r}.")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"FinetuneConfig: unknown optimizer {self.optimizer!r}; choose one of {OPTIMIZERS}."
            )
        if not 0.0 <= self.momentum < 1.0 or self.weight_decay < 0:
            raise ConfigError(
                f"FinetuneConfig: need 0 <= momentum < 1 and weight_decay >= 0, got "
                f"momentum={self.momentum!r}, weight_decay={self.weight_decay!r}."
            )
        if self.schedule not in SCHEDULES:
            raise ConfigError(
                f"FinetuneConfig: unknown schedule {self.schedule!r}; choose one of {SCHEDULES}."
            )
        if self.max_grad_norm is not None and real_problem(
            self.max_grad_norm, low=0.0, low_open=True
        ):
            raise ConfigError(
                f"FinetuneConfig: max_grad_norm must be > 0 or None, got {self.max_grad_norm!r}."
            )

    def make_optimizer(self, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
        """Build the configured optimizer over ``params``."""
        if self.optimizer == "adam":
            return torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
        return torch.optim.SGD(
            params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay
        )


def _batches(loader: Iterable, *, config: FinetuneConfig) -> Iterator[Any]:
    """Yield ``config.steps`` batches (cycling the loader) or ``config.epochs`` full passes."""
    if config.epochs is not None:
        for _ in range(config.epochs):
            yield from loader
        return
    done = 0
    while done < config.steps:
        empty = True
        for batch in loader:
            empty = False
            yield batch
            done += 1
            if done == config.steps:
                return
        if empty:
            raise ConfigError(
                "finetune: the data loader yielded no batches; check the dataset is not empty."
            )


def _total(loader: Iterable, config: FinetuneConfig) -> int | None:
    if config.steps is not None:
        return config.steps
    try:
        return config.epochs * len(loader)  # type: ignore[arg-type]
    except TypeError:
        return None


def _scheduler(
    optimizer: torch.optim.Optimizer, config: FinetuneConfig, total: int | None
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The per-step learning-rate schedule of ``config`` (``None``: a constant rate)."""
    if config.schedule == "constant":
        return None
    if total is None:
        raise ConfigError(
            "finetune: schedule='cosine' needs the number of steps, but the loader has no "
            "length; give steps= instead of epochs=, or use schedule='constant'."
        )
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total, 1))


def move_batch(batch: Any, device: torch.device | str) -> Any:
    """Move tensors of a batch (tensor, tuple/list or dict of them) to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_batch(item, device) for item in batch)
    if isinstance(batch, dict):
        return {key: move_batch(value, device) for key, value in batch.items()}
    return batch


def finetune(
    model: nn.Module,
    loader: Iterable,
    *,
    loss_fn: LossFn,
    config: FinetuneConfig,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> int:
    """Train ``model`` in place on ``(inputs, targets)`` batches from ``loader``.

    Args:
        model: The network; moved to ``device`` and left there. Its train/eval mode is restored.
        loader: Iterable of ``(inputs, targets)`` batches, e.g. a DataLoader.
        loss_fn: ``loss_fn(model(inputs), targets)`` returns the scalar batch-mean loss.
        config: Steps or epochs, optimizer and learning rate.
        device: Where to train.
        progress: A tqdm bar on a terminal (if tqdm is installed), else a plain line on stderr
            every 10 s of a long run, as Lightning and tqdm-based trainers show by default;
            ``False`` is silent.

    Returns:
        The number of optimizer steps done.

    Raises:
        NonFiniteLossError: The loss became NaN/inf (the message names the step).
    """
    model.to(device)
    was_training = training_flags(model)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError(
            "finetune: the model has no trainable parameters (all requires_grad=False)."
        )
    optimizer = config.make_optimizer(params)
    total = _total(loader, config)
    scheduler = _scheduler(optimizer, config, total)
    steps = 0
    try:
        batches = progress_bar(
            _batches(loader, config=config), enabled=progress, total=total, desc="finetune"
        )
        for inputs, targets in batches:
            inputs, targets = move_batch(inputs, device), move_batch(targets, device)
            loss = loss_fn(model(inputs), targets)
            if not torch.isfinite(loss.detach()).all():
                raise NonFiniteLossError(step=steps + 1, loss=float(loss.detach()), lr=config.lr)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.max_grad_norm is not None:
                nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            steps += 1
    finally:
        restore_training(was_training)
    return steps
