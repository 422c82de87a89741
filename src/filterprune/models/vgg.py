"""VGG-16, with and without BatchNorm.

Paper: Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", ICLR 2015. https://arxiv.org/abs/1409.1556 (BatchNorm variant: Ioffe & Szegedy,
https://arxiv.org/abs/1502.03167).

Registered names: ``vgg16``, ``vgg16_bn``.

Two classifier heads:

* ``head="imagenet"`` (default, 224x224 input): ``AdaptiveAvgPool2d(7)`` -> flatten ->
  ``Linear(C*49, 4096*w)`` -> ReLU -> Dropout -> ``Linear(4096*w, 4096*w)`` -> ReLU -> Dropout ->
  ``Linear(4096*w, num_classes)``. Each last-conv channel feeds 49 consecutive inputs of the
  first Linear.
* ``head="cifar"`` (built for 32x32 input, where five max-pools leave a 1x1 map):
  ``AdaptiveAvgPool2d(1)`` -> flatten -> ``Linear(C, 512*w)`` -> ReLU -> Dropout ->
  ``Linear(512*w, num_classes)``. The global pool is the identity at 32x32 and lets any input
  of at least 32x32 through (64x64 images, say).

Tiny preset for tests: ``width=1/16`` (conv widths 4..32) with ``head="cifar"`` on 32x32 input;
``width=1/16`` with ``head="imagenet"`` also keeps 224x224 input fast.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ._build import check_choice, check_positive, init_weights, scale_channels
from .registry import register_model

__all__ = ["VGG", "VGG16_CONFIG", "vgg16", "vgg16_bn"]

#: Conv output widths of VGG-16 (configuration "D"); ``"M"`` is a 2x2 max-pool.
VGG16_CONFIG: tuple[int | str, ...] = (
    64, 64, "M",
    128, 128, "M",
    256, 256, 256, "M",
    512, 512, 512, "M",
    512, 512, 512, "M",
)  # fmt: skip

_HEADS = ("imagenet", "cifar")


def _make_features(
    config: tuple[int | str, ...], *, in_channels: int, width: float, batch_norm: bool
) -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = in_channels
    for item in config:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        out_channels = scale_channels(int(item), width)
        # With BatchNorm the conv bias is redundant (BN's shift absorbs it).
        layers.append(nn.Conv2d(channels, out_channels, 3, padding=1, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_channels))
        layers.append(nn.ReLU(inplace=True))
        channels = out_channels
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """A plain VGG network: a stack of 3x3 convs and max-pools, then an MLP head.

    Input: ``(N, in_channels, 224, 224)`` for ``head="imagenet"``, ``(N, in_channels, 32, 32)``
    for ``head="cifar"``; with either head any size >= 32 works thanks to the adaptive pool.
    Output: logits ``(N, num_classes)``.

    Args:
        config: Conv widths at ``width=1`` with ``"M"`` for max-pools, e.g. :data:`VGG16_CONFIG`.
        num_classes: Number of output logits.
        in_channels: Channels of the input image.
        width: Multiplier for every conv width and for the head's hidden width;
            each becomes ``max(1, round(c * width))``.
        batch_norm: Insert ``BatchNorm2d`` after every conv (convs then have no bias).
        head: ``"imagenet"`` or ``"cifar"``; see the module docstring.
        dropout: Dropout probability in the head.

    Attributes:
        features: The conv/pool stack, ``(N, in_channels, H, W) -> (N, C, H/32, W/32)``.
        pool: ``AdaptiveAvgPool2d(7)`` for the imagenet head, ``AdaptiveAvgPool2d(1)`` for the
            cifar head.
        classifier: The MLP head acting on the flattened features.
    """

    def __init__(
        self,
        config: tuple[int | str, ...] = VGG16_CONFIG,
        *,
        num_classes: int = 1000,
        in_channels: int = 3,
        width: float = 1.0,
        batch_norm: bool = False,
        head: str = "imagenet",
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        check_positive("VGG", "num_classes", num_classes)
        check_positive("VGG", "in_channels", in_channels)
        check_positive("VGG", "width", width)
        #: The (C, H, W) input the model is built for (see filterprune.models.input_shape).
        self.input_size = (in_channels, *((224, 224) if head == "imagenet" else (32, 32)))
        check_choice("VGG", "head", head, _HEADS)
        if not any(item != "M" for item in config):
            raise ConfigError(f"VGG: config must contain at least one conv width, got {config!r}.")

        self.features = _make_features(
            tuple(config), in_channels=in_channels, width=width, batch_norm=batch_norm
        )
        last_channels = next(scale_channels(int(c), width) for c in reversed(config) if c != "M")
        if head == "imagenet":
            hidden = scale_channels(4096, width)
            self.pool: nn.Module = nn.AdaptiveAvgPool2d(7)
            self.classifier = nn.Sequential(
                nn.Linear(last_channels * 7 * 7, hidden),
                nn.ReLU(inplace=True),
                nn.Dropout(dropout),
                nn.Linear(hidden, hidden),
                nn.ReLU(inplace=True),
                nn.Dropout(dropout),
                nn.Linear(hidden, num_classes),
            )
        else:
            hidden = scale_channels(512, width)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.classifier = nn.Sequential(
                nn.Linear(last_channels, hidden),
                nn.ReLU(inplace=True),
                nn.Dropout(dropout),
                nn.Linear(hidden, num_classes),
            )
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map images ``(N, in_channels, H, W)`` to logits ``(N, num_classes)``."""
        x = self.features(x)
        x = self.pool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


@register_model("vgg16")
def vgg16(**kwargs: Any) -> VGG:
    """VGG-16 without BatchNorm. Keyword arguments as for :class:`VGG` (except ``config``)."""
    return VGG(VGG16_CONFIG, batch_norm=False, **kwargs)


@register_model("vgg16_bn")
def vgg16_bn(**kwargs: Any) -> VGG:
    """VGG-16 with BatchNorm. Keyword arguments as for :class:`VGG` (except ``config``)."""
    return VGG(VGG16_CONFIG, batch_norm=True, **kwargs)
