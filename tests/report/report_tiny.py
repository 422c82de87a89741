"""A concat network for the report tests; importable by the CLI as ``report_tiny:make_catnet``."""

from __future__ import annotations

import torch
from torch import nn


class CatNet(nn.Module):
    """a: conv(3->6), b: conv(3->4), cat -> 10 channels, c: conv(10->8), mean, fc(8->2).

    On (N, 3, 8, 8); 3x3 convs with padding 1 and biases, no normalisation.
    """

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 6, 3, padding=1)
        self.b = nn.Conv2d(3, 4, 3, padding=1)
        self.c = nn.Conv2d(10, 8, 3, padding=1)
        self.fc = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([torch.relu(self.a(x)), torch.relu(self.b(x))], dim=1)
        return self.fc(torch.relu(self.c(x)).mean((2, 3)))


def make_catnet() -> CatNet:
    torch.manual_seed(7)
    return CatNet()


def conv_counts(out: int, inp: int, k: int = 3, hw: int = 64) -> tuple[int, int]:
    """(params, MACs) of a biased k x k conv on an hw-pixel map: weights + bias; out*in*k*k*hw."""
    return out * inp * k * k + out, out * inp * k * k * hw


def linear_counts(out: int, inp: int) -> tuple[int, int]:
    return out * inp + out, out * inp
