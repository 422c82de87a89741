"""A tiny classifier and CLI settings for the reliability tests (CPU, a fraction of a second a run).

The CLI imports the model as ``--model rel_tiny:build``, so this folder must be on ``sys.path``
(pytest puts it there; the kill server's subprocess gets it through ``PYTHONPATH``).
"""

from __future__ import annotations

import torch
from torch import nn

MODEL = "rel_tiny:build"

# built-in digits at 8 x 8 pixels, 32 training and 32 validation images
DATA = ["--image-size", "8", "--limit", "32", "--batch-size", "16"]
TRUSTED = ["--model", MODEL, "--trust-model-code"]  # a test module: code we trust
TRAIN = ["train", *TRUSTED, "--task", "classify", *DATA, "--steps", "2", "-q"]
PRUNE = [
    "prune",
    *TRUSTED,
    *DATA,
    "--criterion",
    "taylor",
    "--ranking-batches",
    "1",
    "--amount",
    "0.2",
    "--finetune-steps",
    "2",
    "--max-iterations",
    "3",
    "-q",
]


class Tiny(nn.Module):
    """conv(3->w) BN ReLU, conv(w->2w) BN ReLU, global average pool, Linear(2w->classes)."""

    def __init__(self, num_classes: int = 10, width: int = 8) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(2 * width)
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.fc(x.mean((2, 3)))


class Other(nn.Module):
    """A different architecture: its checkpoint keys do not match :class:`Tiny`'s."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3)))


def build(**kwargs) -> Tiny:
    torch.manual_seed(0)
    return Tiny(**kwargs)


def build_other(**kwargs) -> Other:
    torch.manual_seed(0)
    return Other(**kwargs)
