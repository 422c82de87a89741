"""Fixtures of the store tests: the loop tests' tiny model (tests/loop/loop_tiny.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "loop"))


@pytest.fixture
def example() -> torch.Tensor:
    return torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(5))
