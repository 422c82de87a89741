"""DenseNet-BC: dense blocks whose layers concatenate their output onto their input.

Paper: Huang, Liu, van der Maaten & Weinberger, "Densely Connected Convolutional Networks",
CVPR 2017. https://arxiv.org/abs/1608.06993

Registered name: ``densenet_tiny`` (growth rate 12, blocks ``(4, 4, 4)``, 32x32 input).
The configurable :class:`DenseNet` class builds any other depth.

Each :class:`DenseLayer` is BN-ReLU-Conv1x1-BN-ReLU-Conv3x3 followed by
``torch.cat([x, new], 1)``; each :class:`Transition` is BN-ReLU-Conv1x1-AvgPool2d(2) and
multiplies the channel count by ``compression``. Pruning a filter of a layer's 3x3 conv removes
one channel from everything that layer concatenates into.

Tiny preset for tests: ``densenet_tiny()`` as is (about 0.1M parameters); pass
``growth_rate=4`` (about 12k parameters) to make it smaller still.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ._build import check_choice, check_positive, init_weights
from .registry import register_model

__all__ = ["DenseLayer", "DenseNet", "Transition", "densenet_tiny"]

_STEMS = ("cifar", "imagenet")


class DenseLayer(nn.Module):
    """Bottleneck layer that appends ``growth_rate`` new channels to its input.

    Shapes: ``(N, in_channels, H, W) -> (N, in_channels + growth_rate, H, W)``.

    Args:
        in_channels: Input channels.
        growth_rate: Channels produced by the 3x3 conv.
        bn_size: The 1x1 conv produces ``bn_size * growth_rate`` channels.
    """

    def __init__(self, in_channels: int, *, growth_rate: int, bn_size: int) -> None:
        super().__init__()
        inner = bn_size * growth_rate
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_channels, inner, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(inner)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(inner, growth_rate, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # norm1 returns a new tensor, so the in-place ReLU never modifies x (which is reused).
        new = self.conv1(self.relu1(self.norm1(x)))
        new = self.conv2(self.relu2(self.norm2(new)))
        return torch.cat([x, new], 1)


class Transition(nn.Sequential):
    """BN-ReLU-Conv1x1-AvgPool2d(2) between dense blocks.

    Shapes: ``(N, in_channels, H, W) -> (N, out_channels, H/2, W/2)``.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.AvgPool2d(kernel_size=2, stride=2),
        )


class DenseNet(nn.Module):
    """DenseNet-BC classifier.

    Input: ``(N, in_channels, 32, 32)`` for ``stem="cifar"``, ``(N, in_channels, 224, 224)``
    for ``stem="imagenet"`` (any size works: the head pools globally).
    Output: logits ``(N, num_classes)``.

    Args:
        num_classes: Number of output logits.
        in_channels: Channels of the input image.
        growth_rate: Channels each dense layer adds (``k`` in the paper).
        block_config: Number of dense layers in each block; a transition follows every block
            but the last.
        bn_size: Bottleneck factor; the 1x1 conv of a dense layer has ``bn_size * k`` outputs.
        compression: Transition output is ``floor(compression * in_channels)`` (``theta``).
        init_channels: Stem output channels; defaults to ``2 * growth_rate``.
        stem: ``"cifar"`` (3x3 stride-1 conv) or ``"imagenet"`` (7x7 stride-2 conv, BN, ReLU,
            3x3 stride-2 max-pool).
    """

    def __init__(
        self,
        *,
        num_classes: int = 10,
        in_channels: int = 3,
        growth_rate: int = 12,
        block_config: tuple[int, ...] = (4, 4, 4),
        bn_size: int = 4,
        compression: float = 0.5,
        init_channels: int | None = None,
        stem: str = "cifar",
    ) -> None:
        super().__init__()
        check_positive("DenseNet", "num_classes", num_classes)
        check_positive("DenseNet", "in_channels", in_channels)
        check_positive("DenseNet", "growth_rate", growth_rate)
        #: The (C, H, W) input the model is built for (see filterprune.models.input_shape).
        self.input_size = (in_channels, *((224, 224) if stem == "imagenet" else (32, 32)))
        check_positive("DenseNet", "bn_size", bn_size)
        check_choice("DenseNet", "stem", stem, _STEMS)
        if not 0 < compression <= 1:
            raise ConfigError(f"DenseNet: compression must be in (0, 1], got {compression!r}.")
        if not block_config or any(n < 1 for n in block_config):
            raise ConfigError(
                f"DenseNet: block_config must be a non-empty tuple of positive layer counts, "
                f"got {block_config!r}."
            )

        channels = 2 * growth_rate if init_channels is None else init_channels
        check_positive("DenseNet", "init_channels", channels)
        if stem == "cifar":
            self.stem: nn.Module = nn.Conv2d(in_channels, channels, 3, padding=1, bias=False)
        else:
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, channels, 7, stride=2, padding=3, bias=False),
                nn.BatchNorm2d(channels),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
            )

        stages: list[nn.Module] = []
        for index, num_layers in enumerate(block_config):
            block = []
            for _ in range(num_layers):
                block.append(DenseLayer(channels, growth_rate=growth_rate, bn_size=bn_size))
                channels += growth_rate
            stages.append(nn.Sequential(*block))
            if index < len(block_config) - 1:
                out_channels = max(1, math.floor(compression * channels))
                stages.append(Transition(channels, out_channels))
                channels = out_channels
        self.features = nn.Sequential(*stages)
        self.norm = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map images ``(N, in_channels, H, W)`` to logits ``(N, num_classes)``."""
        x = self.features(self.stem(x))
        x = self.pool(self.relu(self.norm(x)))
        return self.classifier(torch.flatten(x, 1))


@register_model("densenet_tiny")
def densenet_tiny(**kwargs: Any) -> DenseNet:
    """DenseNet-BC with growth 12 and blocks (4, 4, 4) for 32x32 input.

    Keyword arguments as for :class:`DenseNet` and override these defaults.
    """
    options: dict[str, Any] = {"growth_rate": 12, "block_config": (4, 4, 4)}
    options.update(kwargs)
    return DenseNet(**options)
