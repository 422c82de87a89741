"""Binary segmentation task: BCE(+soft Dice) loss, per-image Dice/IoU, synthetic cars as built-in data."""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from filterprune.tasks.losses import BCEDiceLoss
from filterprune.tasks.metrics import SegmentationMeter
from filterprune.tasks.splits import split_by_object_id
from filterprune.tasks.synthetic import SyntheticCarsConfig, make_synthetic_cars
from filterprune.tasks.task import Task, register_task

from ..errors import ConfigError


@register_task("segment")
class SegmentationTask(Task):
    """Binary segmentation of ``(N, 1, H, W)`` logits against ``(N, 1, H, W)`` masks in {0, 1}.

    ``evaluate`` reports ``dice`` and ``iou`` (averaged per image over all images) and ``loss``.

    Args:
        dice_weight: Weight of the soft Dice term added to BCE-with-logits (0 = plain BCE).
        threshold: Probability above which a pixel counts as foreground in the metrics.
    """

    primary_metric = "dice"
    higher_is_better = True

    def __init__(self, *, dice_weight: float = 0.0, threshold: float = 0.5) -> None:
        if not 0.0 < threshold < 1.0:
            raise ConfigError(f"segment task: threshold must be in (0, 1), got {threshold!r}.")
        self.criterion = BCEDiceLoss(dice_weight=dice_weight)
        self.threshold = threshold

    def align(
        self, output: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if output.ndim == 3:
            output = output.unsqueeze(1)
        if target.ndim == 3:
            target = target.unsqueeze(1)
        if output.ndim != 4 or output.shape[1] != 1 or output.shape != target.shape:
            raise ConfigError(
                f"segment task: the model must return one-channel logits (N, 1, H, W) matching the "
                f"masks; got output {tuple(output.shape)} for masks {tuple(target.shape)}."
            )
        return output, target.to(output.dtype)

    def compute_loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.criterion(output, target)

    def make_meter(self) -> SegmentationMeter:
        return SegmentationMeter(threshold=self.threshold, from_logits=True)

    def builtin_data(
        self,
        *,
        seed: int = 0,
        image_size: int = 64,
        num_cars: int = 64,
        views_per_car: int = 8,
        val_fraction: float = 0.2,
        noise_std: float = 0.03,
    ) -> tuple[TensorDataset, TensorDataset]:
        """Synthetic cars, split by car so no car is in both train and val.

        Returns:
            ``(train, val)`` TensorDatasets of ``(image (3, H, W) in [0, 1], mask (1, H, W))``.
        """
        config = SyntheticCarsConfig(
            num_cars=num_cars,
            views_per_car=views_per_car,
            image_size=image_size,
            seed=seed,
            noise_std=noise_std,
        )
        data = make_synthetic_cars(config)
        train_idx, val_idx = split_by_object_id(
            data.object_ids, val_fraction=val_fraction, seed=seed
        )
        train_idx, val_idx = torch.as_tensor(train_idx), torch.as_tensor(val_idx)
        return (
            TensorDataset(data.images[train_idx], data.masks[train_idx]),
            TensorDataset(data.images[val_idx], data.masks[val_idx]),
        )
