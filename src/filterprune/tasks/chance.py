"""A baseline that has not learned, said before time is spent on it: a classifier's accuracy near
chance level, a segmentation model's Dice no better than a trivial mask, a detector's mAP@0.5
near zero.

Pruning keeps what a model learned; a classifier at chance level has learned nothing, so its
pruning curve (and any comparison of criteria on it) means nothing. ``train`` ends with a warning
when its model is there, and ``prune`` says so once the starting model is evaluated, before the
first ranking.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from .._modes import restore_training, training_flags

__all__ = [
    "TRIVIAL_DICE",
    "TRIVIAL_MAP50",
    "chance_warning",
    "dice_warning",
    "map_warning",
    "num_outputs",
    "warn_near_chance",
    "warning_first_evaluation",
]

logger = logging.getLogger("filterprune.tasks")


@torch.no_grad()
def num_outputs(model: nn.Module, example: Any) -> int | None:
    """Logits per sample of a classifier on ``example`` (``None`` if the output is not 2-D)."""
    was_training = training_flags(model)
    model.eval()
    try:
        param = next(model.parameters(), None)
        if param is not None and isinstance(example, torch.Tensor):
            example = example.to(param.device)
        out = model(example)
    finally:
        restore_training(was_training)
    if isinstance(out, (tuple, list)):
        out = out[0]
    return int(out.shape[-1]) if isinstance(out, torch.Tensor) and out.dim() == 2 else None


def chance_warning(
    metrics: Mapping[str, float], classes: int | None, *, what: str, fix: str
) -> str | None:
    """A warning when ``metrics["accuracy"]`` is near chance (``1 / classes``), else ``None``.

    Near means at most ``min(1.5 x chance, chance + 0.1)``: 0.15 for 10 classes, 0.6 for 2.
    """
    dice = metrics.get("dice")
    if dice is not None and "accuracy" not in metrics:
        return dice_warning(dice, what=what, fix=fix)
    if "map" in metrics and "accuracy" not in metrics:
        return map_warning(metrics.get("map50", metrics["map"]), what=what, fix=fix)
    accuracy = metrics.get("accuracy")
    if accuracy is None or not classes or classes < 2:
        return None
    chance = 1 / classes
    if accuracy > min(1.5 * chance, chance + 0.1):
        return None
    return (
        f"{what} has accuracy {accuracy:.3f}, near chance level ({chance:.3f} for {classes} "
        f"classes): it has not learned. {fix}"
    )


# a mask of every pixel as foreground reaches Dice 2p / (1 + p) at foreground fraction p: 0.33 at
# 20 %, 0.5 at a third; a segmentation model at or below this has not learned the shapes
TRIVIAL_DICE = 0.5


def dice_warning(dice: float, *, what: str, fix: str) -> str | None:
    """A warning when a segmentation ``dice`` is no better than a trivial mask, else ``None``."""
    if dice > TRIVIAL_DICE:
        return None
    return (
        f"{what} has Dice {dice:.3f}, no better than a trivial mask (every pixel foreground "
        f"reaches 2p/(1+p): 0.33 at 20 % foreground, {TRIVIAL_DICE} at a third): it has not "
        f"learned. {fix}"
    )


# boxes placed at random on canvases of a few objects almost never overlap one by IoU >= 0.5 with
# the right class: a detector whose mAP@0.5 is below this has not learned to find the objects
TRIVIAL_MAP50 = 0.05


def map_warning(map50: float, *, what: str, fix: str) -> str | None:
    """A warning when a detector's ``map50`` (mAP@0.5) is near zero, else ``None``."""
    if map50 > TRIVIAL_MAP50:
        return None
    return (
        f"{what} has mAP@0.5 {map50:.3f}, near zero (at most {TRIVIAL_MAP50}): it has not "
        f"learned to find the objects. {fix}"
    )


def warn_near_chance(
    metrics: Mapping[str, float], model: nn.Module, example: Any, *, what: str, fix: str
) -> str | None:
    """Log (WARNING, logger ``filterprune.tasks``) and return :func:`chance_warning`'s text."""
    if not any(key in metrics for key in ("accuracy", "dice", "map")):
        return None
    classes = num_outputs(model, example) if "accuracy" in metrics else None
    text = chance_warning(metrics, classes, what=what, fix=fix)
    if text is not None:
        logger.warning("%s", text)
    return text


def warning_first_evaluation(
    evaluate: Callable[[nn.Module], Mapping[str, float]], example: Any, *, what: str, fix: str
) -> Callable[[nn.Module], Mapping[str, float]]:
    """``evaluate``, checking its first result (the starting model's) with :func:`warn_near_chance`."""
    calls = []

    def checked(model: nn.Module) -> Mapping[str, float]:
        metrics = evaluate(model)
        if not calls:
            warn_near_chance(metrics, model, example, what=what, fix=fix)
        calls.append(1)
        return metrics

    return checked
