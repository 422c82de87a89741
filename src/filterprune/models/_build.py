"""Helpers for building the zoo's models: channel scaling, argument checks, weight init."""

from __future__ import annotations

from collections.abc import Collection

from torch import nn

from ..errors import ConfigError

__all__ = [
    "check_choice",
    "check_positive",
    "init_weights",
    "make_divisible",
    "scale_channels",
]


def check_positive(owner: str, name: str, value: float) -> None:
    """Raise ``ValueError`` naming ``owner`` and ``name`` unless ``value > 0``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{owner}: {name} must be a positive number, got {value!r}.")


def check_choice(owner: str, name: str, value: str, choices: Collection[str]) -> None:
    """Raise ``ValueError`` naming ``owner`` and ``name`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ConfigError(f"{owner}: {name} must be one of {options}, got {value!r}.")


def scale_channels(channels: int, width: float) -> int:
    """Scale a channel count by a width multiplier, keeping at least one channel.

    Args:
        channels: The channel count of the reference (``width=1``) architecture.
        width: The multiplier, > 0.

    Returns:
        ``max(1, round(channels * width))``.
    """
    return max(1, round(channels * width))


def make_divisible(value: float, divisor: int, *, min_value: int | None = None) -> int:
    """Round ``value`` to the nearest multiple of ``divisor`` without losing more than 10 %.

    This is the rounding rule of the MobileNet papers. ``divisor=1`` gives plain rounding.

    Args:
        value: The scaled channel count.
        divisor: The multiple to round to, >= 1.
        min_value: The smallest allowed result; defaults to ``divisor``.

    Returns:
        A positive multiple of ``divisor``.
    """
    floor = divisor if min_value is None else min_value
    rounded = max(floor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:  # never round down by more than 10 %
        rounded += divisor
    return rounded


def init_weights(model: nn.Module) -> None:
    """Initialise ``model`` in place with the zoo's fixed scheme.

    Convolutions (incl. transposed): Kaiming-normal (``fan_out``, ReLU gain), bias 0.
    Norm layers: weight 1, bias 0. Linear layers: normal(0, 0.01), bias 0.
    Given the same ``torch.manual_seed``, the result is the same on every run.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d | nn.GroupNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.01)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
