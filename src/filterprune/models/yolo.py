"""A small YOLO-style detector: C2f blocks, SPPF, a path-aggregation neck, an anchor-free head.

The layout follows the one-stage YOLO family (Redmon et al. 2016, https://arxiv.org/abs/1506.02640;
the C2f block and SPPF of later generations; the path-aggregation neck of PANet, Liu et al. 2018,
https://arxiv.org/abs/1803.01534), written from those ideas for this zoo:

* backbone: five stride-2 convolutions (strides 2 .. 32), a C2f block after the last four, SPPF
  at the end;
* neck: top-down (upsample, concatenate, C2f) then bottom-up (stride-2 conv, concatenate, C2f),
  giving maps at strides 8, 16 and 32;
* head: per scale, a box branch (4 distances) and a class branch (``num_classes`` logits), two
  3x3 convs each, concatenated: ``(N, 4 + num_classes, H/s, W/s)``, the format of the ``detect``
  task (:mod:`filterprune.tasks.boxes`).

``forward`` returns the list of the three maps. Widths are ``base * (1, 2, 4, 8, 8)``;
``base=16`` (about 1.3 M parameters) trains on a CPU in minutes at 64-96 px; tiny preset for
tests: ``base=4, depth=1``. The head's last convolutions produce the outputs: pruning keeps their
channels.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError
from ._build import check_positive
from .registry import register_model

__all__ = ["C2f", "ConvBNAct", "DetectHead", "SPPF", "TinyYOLO", "yolo_tiny"]


class ConvBNAct(nn.Module):
    """Conv (no bias), BatchNorm, SiLU. ``(N, c_in, H, W) -> (N, c_out, H / stride, W / stride)``."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 1, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.act = nn.SiLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    """Two 3x3 convs with a residual sum (same width in and out)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.cv1 = ConvBNAct(channels, channels, 3)
        self.cv2 = ConvBNAct(channels, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.cv2(self.cv1(x))


class C2f(nn.Module):
    """A 1x1 conv split in two halves; ``depth`` bottlenecks grow from the second half, and every
    intermediate map is concatenated and mixed by a last 1x1 conv. ``(N, c_in) -> (N, c_out)``."""

    def __init__(self, c_in: int, c_out: int, depth: int = 1) -> None:
        super().__init__()
        self.hidden = max(1, c_out // 2)
        self.cv1 = ConvBNAct(c_in, 2 * self.hidden)
        self.blocks = nn.ModuleList(Bottleneck(self.hidden) for _ in range(depth))
        self.cv2 = ConvBNAct((2 + depth) * self.hidden, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = list(self.cv1(x).chunk(2, dim=1))
        for block in self.blocks:
            parts.append(block(parts[-1]))
        return self.cv2(torch.cat(parts, dim=1))


class SPPF(nn.Module):
    """Spatial pyramid pooling, fast: three chained 5x5 max-pools of a 1x1 conv, concatenated."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        hidden = max(1, c_in // 2)
        self.cv1 = ConvBNAct(c_in, hidden)
        self.pool = nn.MaxPool2d(5, stride=1, padding=2)
        self.cv2 = ConvBNAct(4 * hidden, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = [self.cv1(x)]
        for _ in range(3):
            parts.append(self.pool(parts[-1]))
        return self.cv2(torch.cat(parts, dim=1))


class DetectHead(nn.Module):
    """One scale's outputs: ``(N, c_in, h, w) -> (N, 4 + num_classes, h, w)``."""

    def __init__(self, c_in: int, num_classes: int, hidden: int, prior: float = 0.01) -> None:
        super().__init__()
        self.box = nn.Sequential(
            ConvBNAct(c_in, hidden, 3), ConvBNAct(hidden, hidden, 3), nn.Conv2d(hidden, 4, 1)
        )
        self.cls = nn.Sequential(
            ConvBNAct(c_in, hidden, 3),
            ConvBNAct(hidden, hidden, 3),
            nn.Conv2d(hidden, num_classes, 1),
        )
        nn.init.constant_(self.cls[-1].bias, -math.log((1 - prior) / prior))
        nn.init.constant_(self.box[-1].bias, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.box(x), self.cls(x)], dim=1)


class TinyYOLO(nn.Module):
    """The zoo's YOLO-style detector (see the module docstring).

    Shapes: ``(N, in_channels, H, W)`` with ``H, W`` multiples of 32 -> a list of three maps
    ``(N, 4 + num_classes, H / s, W / s)`` for ``s = 8, 16, 32``.

    Args:
        num_classes: Object classes.
        in_channels: Input channels.
        base: Width of the first stage; the stages are ``base * (1, 2, 4, 8, 8)``.
        depth: Bottlenecks per C2f block.
    """

    def __init__(
        self, *, num_classes: int = 10, in_channels: int = 3, base: int = 16, depth: int = 1
    ) -> None:
        super().__init__()
        for name, value in (("num_classes", num_classes), ("in_channels", in_channels)):
            check_positive("TinyYOLO", name, value)
        check_positive("TinyYOLO", "base", base)
        if not isinstance(depth, int) or depth < 1:
            raise ConfigError(f"TinyYOLO: depth must be an int >= 1, got {depth!r}.")
        self.input_size = (in_channels, 64, 64)  # what it is built for (any multiple of 32 runs)
        c1, c2, c3, c4, c5 = (base * m for m in (1, 2, 4, 8, 8))
        self.stem = ConvBNAct(in_channels, c1, 3, 2)
        self.stage2 = nn.Sequential(ConvBNAct(c1, c2, 3, 2), C2f(c2, c2, depth))
        self.stage3 = nn.Sequential(ConvBNAct(c2, c3, 3, 2), C2f(c3, c3, depth))
        self.stage4 = nn.Sequential(ConvBNAct(c3, c4, 3, 2), C2f(c4, c4, depth))
        self.stage5 = nn.Sequential(ConvBNAct(c4, c5, 3, 2), C2f(c5, c5, depth), SPPF(c5, c5))
        self.top_down4 = C2f(c5 + c4, c4, depth)
        self.top_down3 = C2f(c4 + c3, c3, depth)
        self.down3 = ConvBNAct(c3, c3, 3, 2)
        self.bottom_up4 = C2f(c3 + c4, c4, depth)
        self.down4 = ConvBNAct(c4, c4, 3, 2)
        self.bottom_up5 = C2f(c4 + c5, c5, depth)
        hidden = max(16, c3 // 2)
        self.heads = nn.ModuleList(DetectHead(c, num_classes, hidden) for c in (c3, c4, c5))
        for module in self.modules():
            if isinstance(module, nn.Conv2d) and module.bias is None:
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        p3 = self.stage3(self.stage2(self.stem(x)))
        p4 = self.stage4(p3)
        p5 = self.stage5(p4)
        n4 = self.top_down4(torch.cat([F.interpolate(p5, size=p4.shape[-2:]), p4], dim=1))
        out3 = self.top_down3(torch.cat([F.interpolate(n4, size=p3.shape[-2:]), p3], dim=1))
        out4 = self.bottom_up4(torch.cat([self.down3(out3), n4], dim=1))
        out5 = self.bottom_up5(torch.cat([self.down4(out4), p5], dim=1))
        return [head(f) for head, f in zip(self.heads, (out3, out4, out5), strict=True)]


@register_model("yolo_tiny")
def yolo_tiny(**kwargs: Any) -> TinyYOLO:
    """The zoo's YOLO-style detector (``num_classes``, ``in_channels``, ``base=16``, ``depth=1``)."""
    return TinyYOLO(**kwargs)
