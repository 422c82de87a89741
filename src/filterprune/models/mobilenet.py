"""MobileNetV2: inverted residual blocks with depthwise convolutions and linear bottlenecks.

Paper: Sandler, Howard, Zhu, Zhmoginov & Chen, "MobileNetV2: Inverted Residuals and Linear
Bottlenecks", CVPR 2018. https://arxiv.org/abs/1801.04381

Registered name: ``mobilenet_v2``.

Channel widths follow the paper: each is ``width * c`` rounded to a multiple of ``divisor``
(default 8); the last 1x1 conv has ``1280`` channels, scaled only when ``width > 1``.
``small_input=True`` adapts the net to 32x32 input by making the stem conv and the first 24-wide
stage stride 1 (total stride 8 instead of 32).

Tiny preset for tests: ``width=0.25, small_input=True`` on 32x32 input (block widths 8..80).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ._build import check_positive, init_weights, make_divisible
from .registry import register_model

__all__ = [
    "MOBILENET_V2_SETTINGS",
    "ConvBNReLU6",
    "InvertedResidual",
    "MobileNetV2",
    "mobilenet_v2",
]

#: Stages as ``(expand_ratio t, out_channels c, repeats n, first_stride s)``, Table 2 of the paper.
MOBILENET_V2_SETTINGS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
_STEM_CHANNELS = 32
_LAST_CHANNELS = 1280


class ConvBNReLU6(nn.Sequential):
    """Conv (no bias) -> BatchNorm -> ReLU6; ``groups=in_channels`` makes it depthwise.

    Shapes: ``(N, in_channels, H, W) -> (N, out_channels, H/stride, W/stride)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
    ) -> None:
        super().__init__(
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=(kernel_size - 1) // 2,
                groups=groups,
                bias=False,
            ),
            nn.BatchNorm2d(out_channels),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise 3x3 -> linear project (1x1), residual if shapes match.

    Shapes: ``(N, in_channels, H, W) -> (N, out_channels, H/stride, W/stride)``.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        stride: Stride of the depthwise conv (1 or 2).
        expand_ratio: Hidden width is ``round(in_channels * expand_ratio)``; with 1 the expand
            conv is omitted.
    """

    def __init__(
        self, in_channels: int, out_channels: int, *, stride: int, expand_ratio: int
    ) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ConfigError(f"InvertedResidual: stride must be 1 or 2, got {stride!r}.")
        hidden = round(in_channels * expand_ratio)
        self.use_residual = stride == 1 and in_channels == out_channels
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU6(in_channels, hidden, kernel_size=1))
        layers += [
            ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_residual:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 classifier.

    Input: ``(N, in_channels, 224, 224)``, or ``(N, in_channels, 32, 32)`` with
    ``small_input=True`` (any size works: the head pools globally).
    Output: logits ``(N, num_classes)``.

    Args:
        num_classes: Number of output logits.
        in_channels: Channels of the input image.
        width: Width multiplier applied to every block (and to the last conv when > 1).
        divisor: Scaled widths are rounded to multiples of this (8 in the paper; 1 disables
            rounding, which allows very small test models).
        small_input: Use stride 1 in the stem and the first 24-wide stage, for 32x32 input.
        dropout: Dropout probability before the classifier.
    """

    def __init__(
        self,
        *,
        num_classes: int = 1000,
        in_channels: int = 3,
        width: float = 1.0,
        divisor: int = 8,
        small_input: bool = False,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        check_positive("MobileNetV2", "num_classes", num_classes)
        check_positive("MobileNetV2", "in_channels", in_channels)
        check_positive("MobileNetV2", "width", width)
        #: The (C, H, W) input the model is built for (see filterprune.models.input_shape).
        self.input_size = (in_channels, *((32, 32) if small_input else (224, 224)))
        if isinstance(divisor, bool) or not isinstance(divisor, int) or divisor < 1:
            raise ConfigError(f"MobileNetV2: divisor must be an integer >= 1, got {divisor!r}.")

        channels = make_divisible(_STEM_CHANNELS * width, divisor)
        last_channels = make_divisible(_LAST_CHANNELS * max(1.0, width), divisor)
        layers: list[nn.Module] = [
            ConvBNReLU6(in_channels, channels, stride=1 if small_input else 2)
        ]
        for index, (t, c, n, s) in enumerate(MOBILENET_V2_SETTINGS):
            out_channels = make_divisible(c * width, divisor)
            stride = 1 if small_input and index == 1 else s
            for i in range(n):
                layers.append(
                    InvertedResidual(
                        channels, out_channels, stride=stride if i == 0 else 1, expand_ratio=t
                    )
                )
                channels = out_channels
        layers.append(ConvBNReLU6(channels, last_channels, kernel_size=1))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last_channels, num_classes))
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map images ``(N, in_channels, H, W)`` to logits ``(N, num_classes)``."""
        x = self.pool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


@register_model("mobilenet_v2")
def mobilenet_v2(**kwargs: Any) -> MobileNetV2:
    """MobileNetV2. Keyword arguments as for :class:`MobileNetV2`."""
    return MobileNetV2(**kwargs)
