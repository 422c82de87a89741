"""The pruning loop: rows, checkpoints, resume and every stop condition."""

from __future__ import annotations

import json
import logging
import math

import pytest
import torch
from loop_tiny import Hooks, make_model

from filterprune.criteria import register_criterion
from filterprune.criteria.weights import filter_norms
from filterprune.loop import (
    STOP_REASONS,
    ConfigError,
    PruneConfig,
    RunDir,
    load,
    run_pruning,
)
from filterprune.store.files import is_leftover

BASE_TOTAL = 8 + 12  # prunable channels of make_model() (conv1, conv2); fc feeds the output


def _run(example, hooks, tmp_path=None, **changes):
    config = PruneConfig(**{"amount": 0.25, "finetune": 3, **changes})
    run_dir = None if tmp_path is None else tmp_path / "run"
    return run_pruning(
        make_model(), example, config=config, run_dir=run_dir, progress=False, **hooks.kwargs()
    )


def _pruning_rows(result):
    return [r for r in result.rows if isinstance(r["iteration"], int) and r["iteration"] > 0]


def test_two_iterations_record_rows_and_checkpoints(example, hooks, tmp_path):
    result = _run(example, hooks, tmp_path, max_iterations=2)
    assert result.stop_reason == "max_iterations"
    assert [r["iteration"] for r in result.rows] == [0, 1, 2]
    row0, row1, row2 = result.rows
    assert row0["removed"] == 0 and set(row0["metrics"]) == {"accuracy", "loss"}
    assert row1["removed"] == 2 + 3 and row1["removed_total"] == 5  # floor(8/4) + floor(12/4)
    assert row2["removed_total"] == row1["removed_total"] + row2["removed"]
    assert row2["macs"] < row1["macs"] < row0["macs"]
    assert row2["params"] < row1["params"] < row0["params"]
    assert row2["size_mb"] < row0["size_mb"]
    assert row1["finetune"] == "3 steps"
    assert [start for start, _ in hooks.finetune_calls] == [0, 3]
    assert result.plan.channels["conv1"] == [3, 8]  # composed plan: original numbering

    run = RunDir(tmp_path / "run")
    names = sorted(p.name for p in run.path.iterdir())
    assert names == [
        ".lock",  # the writer's lock, released when the run ends
        "MODEL.txt",
        "config.json",
        "iter_000",
        "iter_001",
        "iter_002",
        "log.jsonl",
        "state.json",
    ]  # MODEL.txt: a model create_model did not build
    for name in ("iter_000", "iter_001", "iter_002"):
        files = sorted(p.name for p in run.checkpoint(name).iterdir())
        scores = ["scores.json"] if name != "iter_000" else []  # what the iteration ranked with
        expected = ["manifest.json", "metrics.json", "plan.json", *scores, "step_plan.json"]
        expected.append("weights.safetensors")
        assert files == expected
    log = [json.loads(line) for line in run.log_path.read_text().splitlines()]
    assert [r["iteration"] for r in log] == [0, 1, 2]
    assert log[2]["removed_total"] == row2["removed_total"]
    state = run.read_state()
    assert state["last_completed"] == 2 and state["finished"] and state["final"] == "iter_002"
    assert PruneConfig.from_json(run.read_config_json()) == PruneConfig(
        amount=0.25, finetune=3, max_iterations=2
    )
    assert not [p for p in run.path.rglob("*") if is_leftover(p.name)]  # no temp files left


def test_reloaded_checkpoint_computes_the_same_outputs(example, hooks, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="filterprune"):
        result = _run(example, hooks, tmp_path, max_iterations=2, final_finetune=2,
                      scope="per_group")  # fmt: skip
    assert result.rows[-1]["iteration"] == "final"
    assert "final finetuning of the kept model (iteration 2): 2 steps" in caplog.text
    reloaded = load(tmp_path / "run", make_model)
    result.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(example), result.model(example), rtol=0, atol=0)
    first = load(tmp_path / "run" / "iter_001", make_model)
    assert first.conv1.out_channels == 8 - 2 and first.conv2.out_channels == 12 - 3


def _strip(rows):
    # wall-clock time and the machine (its load at the start) differ between two runs
    return [{k: v for k, v in r.items() if k not in ("seconds", "machine")} for r in rows]


@pytest.mark.parametrize("criterion", ["l1", "taylor"])
def test_resume_after_an_interruption_matches_an_uninterrupted_run(example, tmp_path, criterion):
    settings = {"max_iterations": 3, "final_finetune": 2, "seed": 11, "criterion": criterion}
    reference = _run(example, Hooks(), tmp_path / "a", **settings)

    with pytest.raises(KeyboardInterrupt):  # finetune of iteration 2 is interrupted
        _run(example, Hooks(fail_at_call=2), tmp_path / "b", **settings)
    state = RunDir(tmp_path / "b" / "run").read_state()
    assert state["last_completed"] == 1 and not state["finished"]

    config = PruneConfig(amount=0.25, finetune=3, **settings)
    hooks = Hooks()
    resumed = run_pruning(
        make_model(),
        example,
        config=config,
        run_dir=tmp_path / "b" / "run",
        resume=True,
        progress=False,
        **hooks.kwargs(),
    )
    assert [start for start, _ in hooks.finetune_calls] == [3, 6, 9]  # iterations 2, 3, final
    assert _strip(resumed.rows) == _strip(reference.rows)
    assert resumed.stop_reason == reference.stop_reason
    ref_state, new_state = reference.model.state_dict(), resumed.model.state_dict()
    assert ref_state.keys() == new_state.keys()
    for key in ref_state:
        torch.testing.assert_close(new_state[key], ref_state[key], rtol=0, atol=0)
    assert resumed.plan == reference.plan


def test_resuming_a_finished_run_returns_it_without_work(example, hooks, tmp_path):
    first = _run(example, hooks, tmp_path, max_iterations=2)
    again_hooks = Hooks()
    again = run_pruning(
        make_model(),
        example,
        config=PruneConfig(amount=0.25, finetune=3, max_iterations=2),
        run_dir=tmp_path / "run",
        resume=True,
        progress=False,
        **again_hooks.kwargs(),
    )
    assert again_hooks.finetune_calls == []
    assert _strip(again.rows) == _strip(first.rows)
    with torch.no_grad():
        torch.testing.assert_close(again.model.eval()(example), first.model.eval()(example))


def test_resume_may_extend_the_iteration_limit(example, hooks, tmp_path):
    _run(example, hooks, tmp_path, max_iterations=1)
    longer = run_pruning(
        make_model(),
        example,
        config=PruneConfig(amount=0.25, finetune=3, max_iterations=2),
        run_dir=tmp_path / "run",
        resume=True,
        progress=False,
        **Hooks().kwargs(),
    )
    assert [r["iteration"] for r in longer.rows] == [0, 1, 2]


def test_resume_refuses_a_different_config(example, hooks, tmp_path):
    _run(example, hooks, tmp_path, max_iterations=1)
    with pytest.raises(ConfigError, match=r"different config \(amount differ"):
        run_pruning(
            make_model(),
            example,
            config=PruneConfig(amount=0.5, finetune=3),
            run_dir=tmp_path / "run",
            resume=True,
            progress=False,
            **Hooks().kwargs(),
        )


def test_existing_run_folder_needs_resume(example, hooks, tmp_path):
    _run(example, hooks, tmp_path, max_iterations=1)
    with pytest.raises(ConfigError, match="already holds a run; resume it"):
        _run(example, Hooks(), tmp_path, max_iterations=1)


# ----- stop conditions -------------------------------------------------------------------------
@pytest.mark.parametrize("limit", [1, 3])
def test_max_iterations_is_an_exact_count(example, hooks, limit):
    result = _run(example, hooks, amount=0.1, max_iterations=limit)
    assert result.stop_reason == "max_iterations"
    assert len(_pruning_rows(result)) == limit
    assert len(hooks.finetune_calls) == limit


@pytest.mark.parametrize(("amount", "fraction"), [(0.4, 0.5), (3, 0.5), (0.3, 0.35), (7, 0.6)])
def test_max_pruned_fraction_is_never_exceeded(example, hooks, amount, fraction):
    result = _run(
        example,
        hooks,
        amount=amount,
        max_pruned_fraction=fraction,
        max_iterations=20,
        max_layer_fraction=1.0,  # no per-layer cap: counts land exactly on the maximum
    )
    cap = math.floor(BASE_TOTAL * fraction)
    assert result.stop_reason == "max_pruned_fraction"
    assert all(r["removed_total"] <= cap for r in result.rows)
    if isinstance(amount, int):  # counts are clipped to hit the cap exactly
        assert result.rows[-1]["removed_total"] == cap
        assert _pruning_rows(result)[-1]["removed"] == (cap % amount or amount)


def test_max_pruned_fraction_clips_before_removing(example, hooks):
    # One iteration of 0.5 would remove 10 of 20 channels; the cap of 0.25 allows only 5.
    result = _run(example, hooks, amount=0.5, max_pruned_fraction=0.25, scope="global")
    assert [r["removed"] for r in _pruning_rows(result)] == [5]
    assert result.stop_reason == "max_pruned_fraction"


def test_target_stops_at_the_first_iteration_that_meets_it(example, hooks):
    result = _run(example, hooks, amount=0.2, targets=("macs=-50%",), max_iterations=20)
    assert result.stop_reason == "target_reached"
    macs = [r["macs"] for r in result.rows]
    assert macs[-1] <= 0.5 * macs[0]
    assert all(m > 0.5 * macs[0] for m in macs[:-1])


def test_absolute_target_met_at_the_start_prunes_nothing(example, hooks):
    result = _run(example, hooks, targets=("params<=1M",))
    assert result.stop_reason == "target_reached"
    assert len(result.rows) == 1 and hooks.finetune_calls == []


class ScoreByIteration:
    """evaluate() whose score drops by 0.1 per pruning iteration: 1.0, 0.9, 0.8, ..."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, model):
        score = 1.0 - 0.1 * self.calls
        self.calls += 1
        return {"score": score}


def test_metric_floor_keeps_the_last_good_model(example, hooks, tmp_path):
    kwargs = {**hooks.kwargs(), "evaluate": ScoreByIteration()}
    config = PruneConfig(amount=0.25, finetune=1, metric="score", metric_floor=0.75)
    result = run_pruning(
        make_model(), example, config=config, run_dir=tmp_path / "run", progress=False, **kwargs
    )
    assert result.stop_reason == "metric_floor"
    assert [r["iteration"] for r in result.rows] == [0, 1, 2, 3]
    assert [r["accepted"] for r in result.rows] == [True, True, True, False]
    assert result.best_iteration == 2
    assert result.metrics["score"] == pytest.approx(0.8)
    kept = result.rows[2]["channels"]
    assert result.model.conv1.out_channels == kept["conv1"]
    assert result.model.conv2.out_channels == kept["conv2"]
    assert result.rows[3]["channels"]["conv2"] < kept["conv2"]
    reloaded = load(tmp_path / "run", make_model)
    assert reloaded.conv2.out_channels == kept["conv2"]
    assert RunDir(tmp_path / "run").read_state()["final"] == "iter_002"


def test_max_metric_drop_is_relative_to_the_start(example, hooks):
    kwargs = {**hooks.kwargs(), "evaluate": ScoreByIteration()}
    config = PruneConfig(amount=0.1, finetune=1, metric="score", max_metric_drop=0.15)
    result = run_pruning(make_model(), example, config=config, progress=False, **kwargs)
    assert result.stop_reason == "metric_floor" and result.best_iteration == 1


class ScriptedScores:
    """``evaluate`` returning the given scores in order, one per call."""

    def __init__(self, *scores: float) -> None:
        self.scores = list(scores)

    def __call__(self, model):
        return {"score": self.scores.pop(0)}


def test_recovery_finetunes_a_missed_iteration_before_rejecting_it(example, hooks, tmp_path):
    # start 1.0; iteration 1 misses (0.7), recovers after one more finetune (0.8);
    # iteration 2 misses three times (0.7, 0.72, 0.74) and is rejected after 2 recoveries
    evaluate = ScriptedScores(1.0, 0.7, 0.8, 0.7, 0.72, 0.74)
    kwargs = {**hooks.kwargs(), "evaluate": evaluate}
    config = PruneConfig(
        amount=0.25, finetune=2, metric="score", metric_floor=0.75, recovery=2, max_iterations=5
    )
    result = run_pruning(
        make_model(), example, config=config, run_dir=tmp_path / "run", progress=False, **kwargs
    )
    assert not evaluate.scores, "every scripted evaluation was used"
    assert result.stop_reason == "metric_floor" and result.best_iteration == 1
    rows = result.rows
    assert [r["accepted"] for r in rows] == [True, True, False]
    assert [r.get("recovery") for r in rows] == [None, 1, 2]
    assert [r["metrics"]["score"] for r in rows] == [1.0, 0.8, 0.74]  # the last evaluation
    assert rows[1]["finetune"] == "4 steps (with 1 recovery)"
    assert rows[2]["finetune"] == "6 steps (with 2 recovery)"
    # each finetune continues the step count: 2 + 2 for iteration 1, 2 + 2 + 2 for iteration 2
    assert [start for start, _ in hooks.finetune_calls] == [0, 2, 4, 6, 8]
    assert result.model.conv2.out_channels == rows[1]["channels"]["conv2"]


def test_without_recovery_the_first_miss_stops_the_run(example, hooks):
    evaluate = ScriptedScores(1.0, 0.7)
    kwargs = {**hooks.kwargs(), "evaluate": evaluate}
    config = PruneConfig(amount=0.25, finetune=2, metric="score", metric_floor=0.75)
    result = run_pruning(make_model(), example, config=config, progress=False, **kwargs)
    assert result.stop_reason == "metric_floor" and result.best_iteration == 0
    assert "recovery" not in result.rows[1] and len(hooks.finetune_calls) == 1


def test_unknown_metric_is_reported(example, hooks):
    with pytest.raises(
        KeyError, match="'acc' is not in the evaluate.. result; its keys are: accuracy, loss"
    ):
        _run(example, hooks, metric="acc", metric_floor=0.5)


def test_nothing_left_when_every_group_is_down_to_one_channel(example, hooks):
    result = _run(example, hooks, amount=0.5, max_pruned_fraction=1.0, max_iterations=None)
    assert result.stop_reason == "nothing_left"
    assert result.model.conv1.out_channels == 1 and result.model.conv2.out_channels == 1
    assert result.rows[-1]["removed_total"] == BASE_TOTAL - 2


def test_schedule_sets_the_amounts_and_ends_the_run(example, hooks):
    result = _run(example, hooks, schedule=(0.5, 2), max_iterations=None)
    assert result.stop_reason == "schedule_done"
    assert [r["removed"] for r in _pruning_rows(result)] == [4 + 6, 2]


def test_every_stop_reason_has_a_message():
    assert set(STOP_REASONS) == {
        "max_iterations",
        "max_pruned_fraction",
        "target_reached",
        "metric_floor",
        "metric_collapse",
        "nothing_left",
        "schedule_done",
        "non_finite",
    }


# ----- layer selection and data criteria ------------------------------------------------------
def test_excluded_layers_keep_their_channels(example, hooks):
    result = _run(example, hooks, exclude=("conv1",), max_iterations=2)
    assert result.model.conv1.out_channels == 8
    assert result.model.conv2.out_channels < 12


def test_include_pattern_that_matches_nothing_names_the_layers(example, hooks):
    with pytest.raises(ConfigError, match=r"include: pattern 'features\.\*' matches no .*conv1"):
        _run(example, hooks, include=("features.*",))


@register_criterion("test_data_l1")
class DataL1:
    """L1 scores that also consume the ranking batches (a stand-in for 'taylor')."""

    name = "test_data_l1"
    needs_data = True

    def __call__(self, graph, *, batches, loss_fn, **context):
        for inputs, targets in batches:
            assert loss_fn(graph.model(inputs), targets).ndim == 0
        return {g.name: filter_norms(graph, g, 1.0) for g in graph.prunable}


def test_data_criterion_gets_the_configured_number_of_batches(example, hooks):
    result = _run(example, hooks, criterion="test_data_l1", ranking_batches=2, max_iterations=2)
    assert [r["ranking_batches"] for r in result.rows] == [0, 2, 2]


def test_data_criterion_without_batches_is_a_clear_error(example):
    with pytest.raises(ConfigError, match="ranks with data: pass batches="):
        run_pruning(
            make_model(), example, config=PruneConfig(criterion="test_data_l1"), progress=False
        )


def test_finetune_budget_without_callback_is_a_clear_error(example):
    with pytest.raises(ConfigError, match="needs a finetune callback"):
        run_pruning(make_model(), example, config=PruneConfig(finetune=5), progress=False)


def test_layer_types_and_explicit_layers_select_what_is_pruned(example, hooks):
    only_conv2 = _run(example, Hooks(), layers=("conv2",), max_iterations=1)
    assert only_conv2.model.conv1.out_channels == 8 and only_conv2.model.conv2.out_channels == 9
    with pytest.raises(ConfigError, match=r"layer_types: \['Conv3d'\] match no layer"):
        _run(example, hooks, layer_types=("Conv3d",))
    with pytest.raises(ConfigError, match=r"layers: \['conv9'\] are not prunable layers"):
        _run(example, hooks, layers=("conv9",))


def test_epoch_budgets_reach_the_callback(example):
    budgets = []

    def finetune(model, start_step, budget):
        budgets.append(budget)
        return 4 * budget.epochs

    config = PruneConfig(amount=0.25, finetune=2, finetune_unit="epochs", max_iterations=2)
    result = run_pruning(make_model(), example, config=config, finetune=finetune, progress=True)
    assert [(b.steps, b.epochs) for b in budgets] == [(None, 2), (None, 2)]
    assert result.rows[2]["finetune"] == "2 epochs (8 steps)"


def test_an_epoch_budget_counts_start_in_epochs_and_says_one_epoch(example):
    starts = []

    def finetune(model, start_step, budget):
        starts.append(start_step)
        return 1 if start_step == 0 else 5

    config = PruneConfig(amount=0.25, finetune=1, finetune_unit="epochs", max_iterations=3)
    result = run_pruning(make_model(), example, config=config, finetune=finetune, progress=False)
    assert starts == [0, 1, 2]  # epochs done before each call, not the steps they took
    assert [row["finetune"] for row in result.rows[1:4]] == [
        "1 epoch (1 step)",
        "1 epoch (5 steps)",
        "1 epoch (5 steps)",
    ]


def test_finetune_callback_must_return_a_step_count(example):
    config = PruneConfig(amount=0.25, finetune=2, max_iterations=1)
    with pytest.raises(TypeError, match="must return the number of steps it did"):
        run_pruning(
            make_model(), example, config=config, finetune=lambda *a: "done", progress=False
        )
