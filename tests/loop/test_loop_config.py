"""PruneConfig, Target and Budget: validation with clear messages, JSON round trips."""

from __future__ import annotations

import pytest

from filterprune.loop import Budget, ConfigError, PruneConfig, Target


def test_defaults_round_trip_through_json():
    config = PruneConfig()
    assert PruneConfig.from_json(config.to_json()) == config


def test_full_config_round_trips_through_json():
    config = PruneConfig(
        criterion="l2",
        criterion_options={"seed": 3},
        schedule=(0.2, 4, 0.1),
        ranking_batches=3,
        finetune=2,
        finetune_unit="epochs",
        final_finetune=1,
        max_iterations=None,
        max_pruned_fraction=0.5,
        targets=("macs=-50%", Target("params", at_most=1000)),
        metric="accuracy",
        metric_floor=0.8,
        max_metric_drop=0.05,
        recovery=2,
        include=("features.*",),
        exclude=("features.0",),
        layer_types=("Conv2d",),
        round_to=4,
        min_channels=2,
        seed=7,
    )
    again = PruneConfig.from_json(config.to_json())
    assert again == config
    assert again.targets == (Target("macs", reduction=0.5), Target("params", at_most=1000))
    assert again.schedule == (0.2, 4, 0.1)


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"amount": 1.0}, "PruneConfig.amount"),
        ({"amount": 0}, "PruneConfig.amount"),
        ({"amount": True}, "PruneConfig.amount"),
        ({"schedule": ()}, "PruneConfig.schedule"),
        ({"schedule": (0.1, 1.5)}, "PruneConfig.schedule[1]"),
        ({"amount": 4, "scope": "per_group"}, "PruneConfig.scope"),
        ({"scope": "layer"}, "PruneConfig.scope"),
        ({"max_iterations": 0}, "PruneConfig.max_iterations"),
        ({"max_pruned_fraction": 0.0}, "PruneConfig.max_pruned_fraction"),
        ({"finetune": -1}, "PruneConfig.finetune"),
        ({"finetune_unit": "hours"}, "PruneConfig.finetune_unit"),
        ({"metric_floor": 0.5}, "needs `metric`"),
        ({"metric": "acc", "max_metric_drop": -1}, "PruneConfig.max_metric_drop"),
        ({"recovery": -1}, "PruneConfig.recovery"),
        ({"recovery": 1.5}, "PruneConfig.recovery"),
        ({"include": "conv*"}, "PruneConfig.include"),
        ({"round_to": 0}, "PruneConfig.round_to"),
        ({"targets": ("macs=50",)}, "macs=50"),
    ],
)
def test_bad_values_name_the_field(changes, fragment):
    with pytest.raises(ConfigError, match=rf"{fragment.replace('[', '.').replace(']', '.')}"):
        PruneConfig(**changes)


def test_unknown_json_key_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"cfg.json: unknown config keys \['amout'\].*amount"):
        PruneConfig.from_json('{"amout": 0.2}', source="cfg.json")


def test_bad_json_names_the_source():
    with pytest.raises(ConfigError, match="cfg.json: not valid JSON"):
        PruneConfig.from_json("{", source="cfg.json")


def test_scope_follows_the_amount_kind():
    config = PruneConfig(schedule=(0.1, 3), scope=None, flops_reg=0)
    assert config.scope_for(0.1) == config.scope_for(3) == "global"  # a count ranks globally
    assert PruneConfig(schedule=(0.1, 0.2), scope=None, flops_reg=0).scope_for(0.1) == "per_group"
    assert config.amount_for(1) == 0.1 and config.amount_for(2) == 3
    assert config.amount_for(3) is None


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("macs=-50%", Target("macs", reduction=0.5)),
        ("params<=1.5M", Target("params", at_most=1.5e6)),
        ("size<=2", Target("size", at_most=2.0)),
        (" latency <= 10 ", Target("latency", at_most=10.0)),
    ],
)
def test_target_parse(text, target):
    assert Target.parse(text) == target


@pytest.mark.parametrize("text", ["flops=-50%", "macs=-50", "macs<=50%", "macs", "macs=-150%"])
def test_target_parse_errors(text):
    with pytest.raises(ConfigError, match="target"):
        Target.parse(text)


def test_target_reached():
    assert Target("macs", reduction=0.5).reached(100, 50)
    assert not Target("macs", reduction=0.5).reached(100, 51)
    assert Target("params", at_most=10).reached(100, 10)


def test_budget_sets_steps_or_epochs():
    assert (Budget(5).steps, Budget(5).epochs) == (5, None)
    assert (Budget(2, "epochs").steps, Budget(2, "epochs").epochs) == (None, 2)
    assert str(Budget(2, "epochs")) == "2 epochs"


def test_replace_validates():
    assert PruneConfig().replace(amount=0.3).amount == 0.3
    with pytest.raises(ConfigError):
        PruneConfig().replace(amount=3.0)
