"""The tiny models the tests share, one per shape of test (CPU, far under a second a run).

* :class:`FlattenNet`: one conv whose channels reach a Linear through ``flatten`` (hand counts of
  params and MACs; the ``tiny`` fixture in ``conftest.py``);
* :class:`TwoConvNet`: two conv-BN-ReLU blocks, global pooling and a Linear head (pruning loops,
  the CLI and the reliability tests).

Tests with their own hand computations (``criteria/test_taylor.py``) keep their own small nets.
"""

from __future__ import annotations

import torch
from torch import nn


class FlattenNet(nn.Module):
    """Conv2d(3, 4, 3, padding=1) -> BatchNorm -> ReLU -> Linear(4*8*8, 10) on (N, 3, 8, 8)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.relu(self.bn(self.conv(x))).flatten(1))


class TwoConvNet(nn.Module):
    """conv(3->width) BN ReLU, conv(width->second) BN ReLU, global pool, Linear(second->classes).

    On (N, 3, H, W); bias-free 3x3 convs with padding 1. ``second`` defaults to ``2 * width``.
    """

    def __init__(self, num_classes: int = 10, width: int = 8, second: int | None = None) -> None:
        super().__init__()
        second = 2 * width if second is None else second
        self.conv1 = nn.Conv2d(3, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, second, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(second)
        self.fc = nn.Linear(second, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.fc(x.mean((2, 3)))
