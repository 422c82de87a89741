"""Every float option refuses NaN, infinity and absurd values, naming the flag or the field.

``nan`` passes every ``<``/``>`` check and ``1e308`` passes ``> 0``; both used to reach torch
(``value cannot be converted to type float without overflow``) or be blamed on another setting.
"""

from __future__ import annotations

import argparse

import pytest
from rel_tiny import PRUNE

from filterprune import FilterpruneError, PruneConfig, Ranking, Selection
from filterprune.cli import main
from filterprune.cli.main import build_parser
from filterprune.measure import LatencyConfig
from filterprune.recipes import Optimizer
from filterprune.tasks import FinetuneConfig, get_task

BAD = ["nan", "-nan", "inf", "-inf", "1e308", "-1e308", "1e400"]


def _float_flags() -> list[tuple[str, str]]:
    """(subcommand, flag) of every option whose value is a float."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    found = []
    for name, command in sub.choices.items():
        for action in command._actions:
            if action.type is float:
                raise AssertionError(f"{name} {action.option_strings}: type=float accepts nan")
            if getattr(action.type, "__name__", "") == "real":
                found.append((name, action.option_strings[-1]))
    return found


FLAGS = _float_flags()


def test_every_float_flag_is_found():
    flags = {flag for _, flag in FLAGS}
    assert {"--lr", "--momentum", "--weight-decay", "--val-fraction", "--final-lr"} <= flags
    assert {"--flops-reg", "--metric-floor", "--max-metric-drop", "--collapse-ratio"} <= flags


@pytest.mark.parametrize(("command", "flag"), FLAGS, ids=[" ".join(f) for f in FLAGS])
@pytest.mark.parametrize("value", BAD)
def test_float_flag_refuses_non_finite_and_absurd_values(command, flag, value, capsys):
    assert main([command, f"{flag}={value}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert f"argument {flag}: expected a finite number in" in err and repr(value) in err, err


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e308", "[1, NaN]"])
@pytest.mark.parametrize("flag", ["--model-arg", "--data-arg", "--criterion-arg"])
def test_key_value_flags_refuse_non_finite_numbers(flag, value, capsys):
    assert main(["prune", flag, f"x={value}"]) == 2
    err = capsys.readouterr().err.strip()
    assert f"argument {flag}: x={value}" in err and "finite" in err, err


@pytest.mark.parametrize("flag", ["--amount", "--schedule"])
@pytest.mark.parametrize("value", ["nan", "inf", "1e308", "1e400%"])
def test_amounts_refuse_non_finite_values(flag, value, baseline, tmp_path, capsys):
    argv = [*PRUNE, "--load", str(baseline), flag, value, "--run-dir", str(tmp_path / "run")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "PruneConfig." in err and "got" in err, err


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda v: Optimizer(lr=v), "--lr"),
        (lambda v: Optimizer(momentum=v), "--momentum"),
        (lambda v: Optimizer(weight_decay=v), "--weight-decay"),
        (lambda v: FinetuneConfig(steps=1, lr=v), "FinetuneConfig.lr"),
        (lambda v: FinetuneConfig(steps=1, momentum=v), "FinetuneConfig.momentum"),
        (lambda v: FinetuneConfig(steps=1, weight_decay=v), "FinetuneConfig.weight_decay"),
        (lambda v: FinetuneConfig(steps=1, max_grad_norm=v), "FinetuneConfig: max_grad_norm"),
        (lambda v: Ranking(flops_reg=v), "Ranking.flops_reg"),
        (lambda v: Selection(amount=v), "Selection.amount"),
        (lambda v: Selection(max_fraction=v), "Selection.max_fraction"),
        (lambda v: PruneConfig(flops_reg=v), "PruneConfig.flops_reg"),
        (lambda v: PruneConfig(amount=v), "PruneConfig.amount"),
        (lambda v: PruneConfig(max_layer_fraction=v), "PruneConfig.max_layer_fraction"),
        (lambda v: PruneConfig(max_pruned_fraction=v), "PruneConfig.max_pruned_fraction"),
        (lambda v: PruneConfig(metric="acc", metric_floor=v), "PruneConfig.metric_floor"),
        (lambda v: PruneConfig(metric="acc", max_metric_drop=v), "PruneConfig.max_metric_drop"),
        (lambda v: PruneConfig(collapse_ratio=v), "PruneConfig.collapse_ratio"),
        (lambda v: LatencyConfig(min_run_time=v), "LatencyConfig.min_run_time"),
        (lambda v: get_task("segment", dice_weight=v), "dice_weight"),
        (lambda v: get_task("segment", threshold=v), "threshold"),
        (lambda v: get_task("classify", label_smoothing=v), "label_smoothing"),
    ],
)
@pytest.mark.parametrize("value", [NAN, INF, -INF, 1e308])
def test_float_fields_refuse_non_finite_and_absurd_values(make, field, value):
    with pytest.raises(FilterpruneError) as info:
        make(value)
    message = str(info.value)
    assert field in message and "\n" not in message, message
