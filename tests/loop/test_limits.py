"""A run that cannot do what it was asked says which setting holds it back."""

from __future__ import annotations

import logging

import pytest
import torch
from loop_tiny import make_model

from filterprune.loop import PruneConfig, run_pruning
from filterprune.loop.limits import layer_cap, reachable_fraction


@pytest.fixture
def warnings():
    seen: list[str] = []

    class _Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                seen.append(record.getMessage())

    handler, logger = _Keep(), logging.getLogger("filterprune.loop")
    logger.addHandler(handler)
    yield seen
    logger.removeHandler(handler)


@pytest.fixture
def logged():
    seen: list[str] = []

    class _Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    handler, logger = _Keep(level=logging.INFO), logging.getLogger("filterprune.loop")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield seen
    logger.removeHandler(handler)
    logger.setLevel(level)


def _run(**changes):
    config = PruneConfig(criterion="l1", scope="global", finetune=0, collapse_ratio=None, **changes)
    return run_pruning(make_model(), torch.randn(1, 3, 8, 8), config=config, progress=False)


def test_reachable_fraction_compounds_fractional_amounts():
    config = PruneConfig(amount=0.05, max_iterations=10, max_pruned_fraction=0.6)
    assert reachable_fraction(config, 1000) == pytest.approx(1 - 0.95**10)  # 40 %, not 50 %
    assert reachable_fraction(PruneConfig(amount=30, max_iterations=3), 200) == pytest.approx(0.45)
    assert layer_cap([8, 12], max_layer_fraction=0.25, min_channels=1) == 5


def test_an_unreachable_max_pruned_fraction_is_named_at_the_start_and_in_the_stop(warnings, logged):
    result = _run(amount=0.1, max_iterations=2, max_pruned_fraction=0.6)
    assert any(
        "max_pruned_fraction=0.6 (--max-pruned-fraction) cannot be reached" in w
        and "max_iterations=2 (--max-iterations)" in w
        for w in warnings
    ), warnings
    assert result.stop_reason == "max_iterations" and result.stop_detail is None  # not an error
    assert logged[-1].startswith("stopped: the iteration limit was reached (max_iterations=2, ")
    assert "--max-iterations, stopped the run at" in logged[-1]
    assert "short of max_pruned_fraction=0.6)" in logged[-1]


def test_a_channel_count_above_the_layer_cap_is_named(warnings):
    # 20 prunable channels, 25 % of 8 and of 12: 5
    result = _run(amount=10, max_iterations=1, max_layer_fraction=0.25)
    assert any(
        "amount=10 (--amount)" in w and "--max-layer-fraction" in w and "at most 5 of the 20" in w
        for w in warnings
    ), warnings
    assert "iteration 1 removed 5 of the 10 channels asked for" in " ".join(warnings)
    assert result.rows[1]["removed"] == 5


def test_settings_that_can_reach_their_goal_say_nothing(warnings, logged):
    _run(amount=0.25, max_iterations=2, max_pruned_fraction=0.4)
    _run(amount=0.1, max_iterations=2)  # the default cap (0.9) is a guard, not a goal
    assert warnings == []
    stops = [line for line in logged if line.startswith("stopped:")]
    assert stops == ["stopped: the iteration limit was reached"] * 2
