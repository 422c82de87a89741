"""Defaults that cannot gut a model: finetuning by default, the collapse guard, the per-layer
cap, the cost term's scope, and channel-count budgets that reach conv filters."""

from __future__ import annotations

import pytest
import torch
from loop_tiny import Hooks, make_model
from torch import nn

from filterprune.criteria import register_criterion
from filterprune.loop import (
    DEFAULT_FINAL_FINETUNE,
    DEFAULT_FINETUNE,
    ConfigError,
    PruneConfig,
    run_pruning,
)
from filterprune.models import create_model


def _run(hooks, config, **overrides):
    kwargs = {**hooks.kwargs(), **overrides}
    return run_pruning(
        make_model(), torch.randn(1, 3, 8, 8), config=config, progress=False, **kwargs
    )


# ----- finetuning by default ------------------------------------------------------------------
def test_a_run_without_a_budget_finetunes_by_the_documented_default():
    hooks = Hooks()
    result = _run(hooks, PruneConfig(amount=0.25, max_iterations=1))
    budgets = [budget.steps for _, budget in hooks.finetune_calls]
    assert budgets == [DEFAULT_FINETUNE["steps"], DEFAULT_FINAL_FINETUNE["steps"]]
    assert budgets == [100, 300]  # the values the docs promise
    # the callback can tell the final finetuning from the others (e.g. to run it longer)
    assert [budget.final for _, budget in hooks.finetune_calls] == [False, True]
    assert [r["iteration"] for r in result.rows] == [0, 1, "final"]


def test_an_explicit_budget_is_kept_and_adds_no_final_finetune():
    hooks = Hooks()
    _run(hooks, PruneConfig(amount=0.25, max_iterations=1, finetune=0))
    assert hooks.finetune_calls == []
    _run(hooks, PruneConfig(amount=0.25, max_iterations=1, finetune=3))
    assert [budget.steps for _, budget in hooks.finetune_calls] == [3]


def test_the_default_budget_follows_the_unit():
    config = PruneConfig(finetune_unit="epochs")
    assert (config.budget().amount, config.budget(final=True).amount) == (1, 1)


# ----- the collapse guard ---------------------------------------------------------------------
class Scripted:
    """An evaluate callback that returns the given accuracies in turn (then the last one)."""

    def __init__(self, *values: float) -> None:
        self.values, self.calls = list(values), 0

    def __call__(self, model: nn.Module) -> dict[str, float]:
        value = self.values[min(self.calls, len(self.values) - 1)]
        self.calls += 1
        return {"accuracy": value, "loss": 1.0 - value}


def test_a_collapsing_metric_stops_the_run_and_keeps_the_last_good_iteration():
    evaluate = Scripted(0.90, 0.88, 0.11, 0.11)
    config = PruneConfig(amount=0.25, finetune=1, max_iterations=5)
    result = _run(Hooks(), config, evaluate=evaluate)
    assert result.stop_reason == "metric_collapse"
    assert result.best_iteration == 1
    assert [r["accepted"] for r in result.rows] == [True, True, False]
    assert "accuracy collapsed to 0.11" in result.stop_detail
    assert "0.45" in result.stop_detail  # half of the starting 0.90
    assert result.model.conv2.out_channels == result.rows[1]["channels"]["conv2"]


def test_meeting_the_targets_by_destroying_the_metric_is_a_failure():
    evaluate = Scripted(0.90, 0.10)
    config = PruneConfig(amount=0.5, finetune=1, targets=("macs=-20%",))
    result = _run(Hooks(), config, evaluate=evaluate)
    assert result.stop_reason == "metric_collapse"
    assert result.best_iteration == 0
    assert "targets not reached" in result.stop_detail
    assert "collapsed" in result.stop_detail


def test_the_user_may_turn_the_guard_off():
    evaluate = Scripted(0.90, 0.10)
    config = PruneConfig(amount=0.5, finetune=1, targets=("macs=-20%",), collapse_ratio=None)
    result = _run(Hooks(), config, evaluate=evaluate)
    assert result.stop_reason == "target_reached"
    assert result.stop_detail is None


def test_a_metric_bound_replaces_the_guard():
    evaluate = Scripted(0.90, 0.40)  # below half, but within the user's own bound
    config = PruneConfig(
        amount=0.25, finetune=1, max_iterations=1, metric="accuracy", metric_floor=0.3
    )
    result = _run(Hooks(), config, evaluate=evaluate)
    assert result.stop_reason == "max_iterations"


def test_a_lower_is_better_metric_collapses_upwards():
    evaluate = Scripted(0.90, 0.85, 0.10)  # loss = 1 - accuracy: 0.10 -> 0.15 -> 0.90
    config = PruneConfig(
        amount=0.25, finetune=1, max_iterations=3, metric="loss", higher_is_better=False
    )
    result = _run(Hooks(), config, evaluate=evaluate)
    assert result.stop_reason == "metric_collapse"
    assert result.best_iteration == 1
    assert "above 0.2" in result.stop_detail


@pytest.mark.parametrize("ratio", [0.0, 1.0, 1.5, "half"])
def test_collapse_ratio_is_checked(ratio):
    with pytest.raises(ConfigError, match="collapse_ratio"):
        PruneConfig(collapse_ratio=ratio)


# ----- the per-layer cap ----------------------------------------------------------------------
@register_criterion("test_conv1_first")
class Conv1First:
    """conv1's channels score 0 (removed first), everything else 1."""

    needs_data = False

    def __call__(self, graph, **context):
        return {g.name: torch.zeros(g.size) if g.name == "conv1" else torch.ones(g.size)
                for g in graph.prunable}  # fmt: skip


def test_a_global_ranking_takes_at_most_its_layer_cap_per_iteration():
    config = PruneConfig(
        criterion="test_conv1_first", amount=0.35, scope="global", finetune=0,
        max_layer_fraction=0.25,
    )  # fmt: skip
    result = _run(Hooks(), config.replace(max_iterations=1))
    assert result.model.conv1.out_channels == 6  # 8 - floor(8 * 0.25); without a cap: 1
    assert result.model.conv2.out_channels == 9  # the rest of the budget, capped at 3 too
    uncapped = _run(Hooks(), config.replace(max_iterations=1, max_layer_fraction=1.0))
    assert uncapped.model.conv1.out_channels == 1


def test_the_default_layer_cap_is_two_and_a_half_times_the_share():
    removal = PruneConfig().removal
    assert removal.max_fraction is None
    assert removal.layer_fraction(0.1) == 0.25  # the recipe's amount: a quarter of a layer
    assert removal.layer_fraction(0.2) == 0.5 and removal.layer_fraction(0.5) == 1.0
    assert PruneConfig(max_layer_fraction=0.3).removal.layer_fraction(0.5) == 0.3


@pytest.mark.parametrize("fraction", [0.0, 1.5, float("nan")])
def test_max_layer_fraction_is_checked(fraction):
    with pytest.raises(ConfigError, match="max_layer_fraction"):
        PruneConfig(max_layer_fraction=fraction)


# ----- the cost term needs a global ranking ---------------------------------------------------
def test_the_default_scope_is_global_and_none_picks_by_the_cost_term():
    assert PruneConfig(amount=0.1).scope_for(0.1) == "global"
    assert PruneConfig(flops_reg=1e-3, amount=0.1, scope=None).scope_for(0.1) == "global"
    assert PruneConfig(flops_reg=0, amount=0.1, scope=None).scope_for(0.1) == "per_group"


def test_a_per_group_scope_turns_the_default_cost_term_off():
    config = PruneConfig(scope="per_group")
    assert config.flops_reg == 0 and config.scope == "per_group"


def test_flops_reg_with_the_per_group_scope_is_refused():
    with pytest.raises(
        ConfigError, match=r"flops_reg=0\.001: a cost term .*does nothing.*'global'"
    ):
        PruneConfig(flops_reg=1e-3, scope="per_group")


# ----- channel-count budgets reach the conv filters ------------------------------------------
def test_a_channel_count_on_vgg_removes_conv_filters_not_only_the_classifier():
    torch.manual_seed(0)
    model = create_model("vgg16_bn", width=1 / 16, num_classes=10)  # ImageNet head: 2 x 256 hidden
    x = torch.randn(1, 3, 32, 32)
    convs = {n: m.out_channels for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    linear = model.classifier[0].out_features
    config = PruneConfig.recipe(criterion="l1", amount=80, max_iterations=1)
    result = run_pruning(model, x, config=config, progress=False)
    removed_conv = sum(
        convs[n] - m.out_channels
        for n, m in result.model.named_modules()
        if isinstance(m, nn.Conv2d)
    )
    assert removed_conv > 0
    assert linear - result.model.classifier[0].out_features <= linear // 4
    assert result.rows[1]["macs"] < result.rows[0]["macs"] * 0.95
