"""ResNet-18/34/50/101/152.

Paper: He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition", CVPR 2016.
https://arxiv.org/abs/1512.03385

Registered names: ``resnet18``, ``resnet34`` (:class:`BasicBlock`), ``resnet50``, ``resnet101``,
``resnet152`` (:class:`Bottleneck`, stride on the 3x3 conv as in "ResNet v1.5").

Two stems: ``stem="imagenet"`` (default; 7x7 stride-2 conv + 3x3 stride-2 max-pool, for
224x224 input) and ``stem="cifar"`` (3x3 stride-1 conv, no max-pool, for 32x32 input).
A shortcut that changes shape is a 1x1 conv + BatchNorm ("option B").

Tiny preset for tests: ``width=1/16`` (stage widths 4, 8, 16, 32) with ``stem="cifar"`` on
32x32 input.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ._build import check_choice, check_positive, init_weights, scale_channels
from .registry import register_model

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "ResNet",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
]

_STEMS = ("imagenet", "cifar")
_STAGE_WIDTHS = (64, 128, 256, 512)


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Module | None:
    """1x1 conv + BN projection when the residual branch changes shape, else ``None``."""
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
        nn.BatchNorm2d(out_channels),
    )


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers plus an identity or projection shortcut.

    Shapes: ``(N, in_channels, H, W) -> (N, planes, H/stride, W/stride)``.

    Args:
        in_channels: Input channels.
        planes: Output channels (``expansion`` is 1).
        stride: Stride of the first conv and of the shortcut.
    """

    expansion = 1

    def __init__(self, in_channels: int, planes: int, *, stride: int = 1) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand (x4), plus an identity or projection shortcut.

    Shapes: ``(N, in_channels, H, W) -> (N, 4 * planes, H/stride, W/stride)``.

    Args:
        in_channels: Input channels.
        planes: Width of the inner 3x3 conv; the block outputs ``4 * planes`` channels.
        stride: Stride of the 3x3 conv and of the shortcut.
    """

    expansion = 4

    def __init__(self, in_channels: int, planes: int, *, stride: int = 1) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """A four-stage residual network with global average pooling and a linear classifier.

    Input: ``(N, in_channels, 224, 224)`` for ``stem="imagenet"``, ``(N, in_channels, 32, 32)``
    for ``stem="cifar"`` (any size works: the head pools globally).
    Output: logits ``(N, num_classes)``.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        layers: Number of blocks in each of the four stages, e.g. ``(2, 2, 2, 2)``.
        num_classes: Number of output logits.
        in_channels: Channels of the input image.
        width: Multiplier for the stem and stage widths (64, 128, 256, 512 at ``width=1``);
            each becomes ``max(1, round(c * width))``.
        stem: ``"imagenet"`` or ``"cifar"``; see the module docstring.
        zero_init_residual: Start each block's last BN at weight 0, so blocks begin as identity.
    """

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: tuple[int, int, int, int],
        *,
        num_classes: int = 1000,
        in_channels: int = 3,
        width: float = 1.0,
        stem: str = "imagenet",
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        check_positive("ResNet", "num_classes", num_classes)
        check_positive("ResNet", "in_channels", in_channels)
        check_positive("ResNet", "width", width)
        #: The (C, H, W) input the model is built for (see filterprune.models.input_shape).
        self.input_size = (in_channels, *((224, 224) if stem == "imagenet" else (32, 32)))
        check_choice("ResNet", "stem", stem, _STEMS)
        if len(layers) != 4 or any(n < 1 for n in layers):
            raise ConfigError(f"ResNet: layers must be four positive block counts, got {layers!r}.")

        widths = [scale_channels(c, width) for c in _STAGE_WIDTHS]
        stem_channels = widths[0]
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, stem_channels, 7, stride=2, padding=3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        else:
            self.conv1 = nn.Conv2d(in_channels, stem_channels, 3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(stem_channels)
        self.relu = nn.ReLU(inplace=True)

        channels = stem_channels
        stages = []
        for index, (planes, blocks) in enumerate(zip(widths, layers, strict=True)):
            stride = 1 if index == 0 else 2
            stage = []
            for b in range(blocks):
                stage.append(block(channels, planes, stride=stride if b == 0 else 1))
                channels = planes * block.expansion
            stages.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages

        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

        init_weights(self)
        if zero_init_residual:
            for module in self.modules():
                if isinstance(module, Bottleneck):
                    nn.init.zeros_(module.bn3.weight)
                elif isinstance(module, BasicBlock):
                    nn.init.zeros_(module.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map images ``(N, in_channels, H, W)`` to logits ``(N, num_classes)``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


@register_model("resnet18")
def resnet18(**kwargs: Any) -> ResNet:
    """ResNet-18 (BasicBlock, 2-2-2-2). Keyword arguments as for :class:`ResNet`."""
    return ResNet(BasicBlock, (2, 2, 2, 2), **kwargs)


@register_model("resnet34")
def resnet34(**kwargs: Any) -> ResNet:
    """ResNet-34 (BasicBlock, 3-4-6-3). Keyword arguments as for :class:`ResNet`."""
    return ResNet(BasicBlock, (3, 4, 6, 3), **kwargs)


@register_model("resnet50")
def resnet50(**kwargs: Any) -> ResNet:
    """ResNet-50 (Bottleneck, 3-4-6-3). Keyword arguments as for :class:`ResNet`."""
    return ResNet(Bottleneck, (3, 4, 6, 3), **kwargs)


@register_model("resnet101")
def resnet101(**kwargs: Any) -> ResNet:
    """ResNet-101 (Bottleneck, 3-4-23-3). Keyword arguments as for :class:`ResNet`."""
    return ResNet(Bottleneck, (3, 4, 23, 3), **kwargs)


@register_model("resnet152")
def resnet152(**kwargs: Any) -> ResNet:
    """ResNet-152 (Bottleneck, 3-8-36-3). Keyword arguments as for :class:`ResNet`."""
    return ResNet(Bottleneck, (3, 8, 36, 3), **kwargs)
