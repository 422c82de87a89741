"""Criteria that draw at random (random, kmeans) follow the run's seed: different seeds remove
different channels, the same seed the same ones, and an explicit criterion seed is kept."""

from __future__ import annotations

import pytest
import torch
from loop_tiny import make_model

from filterprune.loop import PruneConfig, run_pruning


def _removed(criterion: str, run_seed: int, **options) -> dict:
    config = PruneConfig(
        criterion=criterion, criterion_options=options, amount=0.25, max_iterations=2,
        finetune=0, seed=run_seed,
    )  # fmt: skip
    result = run_pruning(make_model(), torch.randn(1, 3, 8, 8), config=config, progress=False)
    assert result.plan.num_removed > 0  # something was chosen, so the comparison means something
    return result.plan.to_dict()


@pytest.mark.parametrize("criterion", ["random", "kmeans"])
def test_the_run_seed_decides_what_a_random_criterion_removes(criterion):
    if criterion == "kmeans":
        pytest.importorskip("sklearn")
    plans = [_removed(criterion, seed) for seed in range(4)]
    assert _removed(criterion, 0) == plans[0]  # reproducible
    assert len({str(p) for p in plans}) > 1  # before, every seed removed the same channels


def test_an_explicit_criterion_seed_overrides_the_run_seed():
    assert _removed("random", 0, seed=5) == _removed("random", 1, seed=5)
