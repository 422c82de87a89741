"""Shared fixtures: seeded, two-thread tests; a tiny conv net (``tiny_models.FlattenNet``) for
measuring and reporting."""

import pytest
import torch

from tiny_models import FlattenNet


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    torch.set_num_threads(2)
    yield


@pytest.fixture
def tiny() -> FlattenNet:
    torch.manual_seed(0)
    return FlattenNet()


@pytest.fixture
def tiny_input() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(1, 3, 8, 8)
