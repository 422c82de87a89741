"""On every zoo model the per-layer table and the iteration table count the same channels."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from test_zoo import TINY

from filterprune.loop import PruneConfig, run_pruning
from filterprune.models import create_model


@pytest.fixture(autouse=True, scope="module")
def _single_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models on a busy 2-core machine: threads only add hand-offs
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize("name", sorted(TINY))
def test_layer_table_total_equals_iteration_table(name: str) -> None:
    kwargs, in_shape, _ = TINY[name]
    torch.manual_seed(0)
    model = create_model(name, **kwargs)
    example = torch.randn(1, *in_shape[1:])
    config = PruneConfig(criterion="l1", amount=0.3, max_iterations=1)
    result = run_pruning(model, example, config=config, progress=False)
    removed = result.final_row["removed_total"]
    assert removed > 0
    layers = result.layer_table()
    assert sum(layers.column("removed")) == removed
    assert sum(layers.column("before")) - sum(layers.column("after")) == removed
    assert result.table().column("removed") == [0, removed]
