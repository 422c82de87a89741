"""Segmentation losses: BCE-with-logits plus an optional soft Dice term.

Soft Dice loss as in V-Net (Milletari et al. 2016, https://arxiv.org/abs/1606.04797).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError


def soft_dice_loss(
    logits: torch.Tensor, target: torch.Tensor, *, smooth: float = 1.0
) -> torch.Tensor:
    """``1 - mean over images of (2 Σ p t + smooth) / (Σ p + Σ t + smooth)`` with ``p = sigmoid(logits)``.

    Args:
        logits: ``(N, 1, H, W)`` raw scores.
        target: Same shape, values in {0, 1}.
        smooth: Added to numerator and denominator; keeps empty masks finite.

    Returns:
        Scalar loss in [0, 1].
    """
    probs = torch.sigmoid(logits).flatten(1)
    target = target.flatten(1).to(probs.dtype)
    inter = (probs * target).sum(1)
    dice = (2 * inter + smooth) / (probs.sum(1) + target.sum(1) + smooth)
    return 1.0 - dice.mean()


class BCEDiceLoss(nn.Module):
    """``BCEWithLogits + dice_weight * soft Dice`` for binary masks.

    Args:
        dice_weight: Weight of the soft Dice term; 0 gives plain BCE-with-logits.
    """

    def __init__(self, *, dice_weight: float = 0.0) -> None:
        super().__init__()
        if isinstance(dice_weight, bool) or not 0 <= dice_weight <= 1e30:  # also NaN
            raise ConfigError(f"BCEDiceLoss: dice_weight must be >= 0, got {dice_weight!r}.")
        self.dice_weight = dice_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``logits``/``target``: ``(N, 1, H, W)``. Returns the scalar batch-mean loss."""
        target = target.to(logits.dtype)
        loss = nn.functional.binary_cross_entropy_with_logits(logits, target)
        if self.dice_weight:
            loss = loss + self.dice_weight * soft_dice_loss(logits, target)
        return loss
