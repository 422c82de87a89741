"""A tiny classifier and CLI settings for the reliability tests (CPU, a fraction of a second a run).

The CLI imports the model as ``--model rel_tiny:build``, so this folder must be on ``sys.path``
(pytest puts it there; the kill server's subprocess gets it through ``PYTHONPATH``), and so must
``tests/`` (for ``tiny_models``).
"""

from __future__ import annotations

import torch
from torch import nn

from tiny_models import TwoConvNet

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


Tiny = TwoConvNet  # conv(3->w) BN ReLU, conv(w->2w) BN ReLU, global pool, Linear


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
