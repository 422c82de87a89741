"""Image classification task: cross-entropy loss, accuracy / top-5, digits as built-in data."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import TensorDataset

from filterprune.tasks.digits import DigitsConfig, digits_datasets
from filterprune.tasks.metrics import ClassificationMeter
from filterprune.tasks.task import Task, register_task

from ..errors import ConfigError, DataError


@register_task("classify")
class ClassificationTask(Task):
    """Single-label classification of ``(N, C)`` logits against ``(N,)`` class indices.

    ``evaluate`` reports ``accuracy``, ``top5`` (when there are at least 5 classes) and ``loss``.

    Args:
        label_smoothing: Label smoothing of the cross-entropy loss, in [0, 1).
    """

    primary_metric = "accuracy"
    higher_is_better = True

    def __init__(self, *, label_smoothing: float = 0.0) -> None:
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigError(
                f"classify task: label_smoothing must be in [0, 1), got {label_smoothing!r}."
            )
        self.criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    def align(
        self, output: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if output.ndim != 2:
            raise ConfigError(
                f"classify task: the model must return logits of shape (N, num_classes), got "
                f"{tuple(output.shape)}; for masks use the 'segment' task."
            )
        target = target.long()
        if target.ndim == 1 and target.numel():
            low, high, classes = int(target.min()), int(target.max()), int(output.shape[1])
            if low < 0 or high >= classes:
                bad = low if low < 0 else high
                raise DataError(
                    f"classify task: the data has class index {bad} but the model outputs "
                    f"{classes} classes (logits {tuple(output.shape)}); build the model for "
                    f"{max(high + 1, classes)} classes (num_classes={max(high + 1, classes)}) or "
                    f"use labels 0..{classes - 1}."
                )
        return output, target

    def compute_loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.criterion(output, target)

    def make_meter(self) -> ClassificationMeter:
        return ClassificationMeter(topk=(5,))

    def builtin_data(
        self, *, seed: int = 0, image_size: int = 32, val_fraction: float = 0.2, **options: Any
    ) -> tuple[TensorDataset, TensorDataset]:
        """scikit-learn digits, ``(3, image_size, image_size)`` in [-1, 1], 10 classes, stratified split."""
        config = DigitsConfig(
            image_size=image_size, val_fraction=val_fraction, seed=seed, **options
        )
        return digits_datasets(config)
