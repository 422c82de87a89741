"""Fixtures of the loop tests; the model and callbacks live in loop_tiny.py."""

from __future__ import annotations

import pytest
import torch
from loop_tiny import Hooks


@pytest.fixture
def example() -> torch.Tensor:
    return torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(5))


@pytest.fixture
def hooks() -> Hooks:
    return Hooks()
