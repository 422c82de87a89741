"""A latency target is decided on the side-by-side speed-up, timed again while too spread.

``compare_latencies`` is replaced by a stand-in that returns chosen round speed-ups, so the
decision rule is tested without timing anything (the timing itself is tested in tests/measure).
"""

from __future__ import annotations

import logging
import math

import pytest
import torch
from loop_tiny import Hooks, make_model

import filterprune.measure
import filterprune.measure.latency
from filterprune.config import PruneConfig, Target
from filterprune.loop import run_pruning
from filterprune.loop.run import PruningLoop
from filterprune.loop.stop import latency_verdict, targets_reached
from filterprune.measure.latency import FloorComparison

GOAL = Target.parse("latency=-50%")  # a 2x speed-up
EXAMPLE = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(5))


@pytest.mark.parametrize(
    ("rounds", "verdict"),
    [
        ([2.1, 2.2, 2.4, 2.5, 3.0], True),  # every round above 2x
        ([1.0, 2.05, 2.1, 2.2, 2.3], True),  # one slow round does not decide
        ([1.2, 1.3, 1.4, 1.5, 2.5], False),
        ([1.5, 1.8, 2.0, 2.3, 2.6], None),  # the middle half straddles 2x
    ],
)
def test_the_middle_half_of_the_rounds_decides(rounds, verdict):
    assert latency_verdict(GOAL, {"round_speedups": rounds}) is verdict


def test_two_latencies_timed_apart_do_not_decide():
    config = PruneConfig(targets=["latency=-50%"])
    original = {"latency_ms": 10.0}
    # 4 ms against a starting 10 ms, but timed side by side the model is only 1.2x faster
    row = {"latency_ms": 4.0, "speedup": 1.2, "round_speedups": [1.1, 1.2, 1.2, 1.3, 1.3]}
    assert not targets_reached(config, original, row)
    assert targets_reached(config, original, {**row, "round_speedups": [2.1] * 5, "speedup": 2.1})


def test_a_latency_target_makes_the_default_cost_term_latency():
    assert PruneConfig(targets=["latency=-60%"]).cost == "latency"
    assert PruneConfig(targets=["latency=-60%"], cost="flops").cost == "flops"  # set: kept
    assert PruneConfig(targets=["macs=-60%"]).cost == "flops"


def _record(rounds: list[float]) -> dict:
    speedup = sorted(rounds)[len(rounds) // 2]
    return {
        "device": "cpu", "batch_size": 1, "median_ms": 1.0 / speedup, "iqr_ms": 0.01,
        "original_median_ms": 1.0, "speedup": speedup, "speedup_low": min(rounds),
        "speedup_high": max(rounds), "round_speedups": rounds, "flags": [],
        "macs": 1, "original_macs": 1,
    }  # fmt: skip


def _floor(speedup: float | None, clean: tuple[int, int] = (40, 60)) -> FloorComparison:
    return FloorComparison(speedup=speedup, reference_ms=2.0, model_ms=1.0, clean_blocks=clean,
                           blocks=(50, 70))  # fmt: skip


def _run(monkeypatch, answers: list[list[float]], floor: float | None = None, floors=None):
    """A 50 % latency run whose timings give these round speed-ups, one list per timing, and
    whose clean-block timings give ``floor`` (``None``: too few clean blocks); returns the
    result and the rounds each timing was asked for (``floors`` collects the floor timings)."""
    left, asked = iter(answers), []

    def fake_floor(reference, model, example, **kwargs):
        if floors is not None:
            floors.append(kwargs)
        return _floor(floor)

    monkeypatch.setattr(filterprune.measure.latency, "floor_speedup", fake_floor)

    def fake(original, model, example, latency):
        asked.append(latency.rounds)
        return [_record(next(left))]

    monkeypatch.setattr(filterprune.measure, "compare_latencies", fake)
    config = PruneConfig(
        criterion="l1", amount=0.25, finetune=0, final_finetune=0, targets=["latency=-50%"]
    )
    result = run_pruning(make_model(), EXAMPLE, config=config, progress=False,
                         evaluate=Hooks().evaluate)  # fmt: skip
    return result, asked


def test_a_spread_measurement_is_timed_again_with_more_rounds(monkeypatch, caplog):
    monkeypatch.setattr(PruningLoop, "_table_speedup", lambda self, original: 1.9)  # near 2x
    answers = [
        [1.0] * 5,  # the starting model against itself
        [1.5, 1.9, 2.1, 2.3, 2.6],  # iteration 1: undecided
        [2.1] * 10,  # timed again with 10 rounds: met
    ]
    with caplog.at_level(logging.INFO, logger="filterprune"):
        result, asked = _run(monkeypatch, answers)
    assert asked == [5, 5, 10]
    assert result.stop_reason == "target_reached"
    assert result.rows[1]["speedup"] == pytest.approx(2.1)
    assert "timing again with 10 rounds" in caplog.text


def test_a_machine_too_noisy_to_decide_says_so_and_the_median_decides(monkeypatch, caplog):
    monkeypatch.setattr(PruningLoop, "_table_speedup", lambda self, original: None)  # no table
    spread = [1.0, 1.6, 2.1, 2.6, 3.2]
    with caplog.at_level(logging.WARNING, logger="filterprune"):
        result, asked = _run(monkeypatch, [[1.0] * 5] + [spread] * 3)
    assert asked == [5, 5, 10, 20]
    assert "too noisy to decide latency=-50%" in caplog.text
    assert "the median (2.10x) decides" in caplog.text
    assert result.stop_reason == "target_reached"  # median 2.1x >= 2x
    assert "latency_decided_by" not in result.rows[1]


@pytest.mark.parametrize(("predicted", "reached"), [(2.5, True), (1.6, False)])
def test_where_timing_cannot_decide_the_lookup_table_does(monkeypatch, caplog, predicted, reached):
    monkeypatch.setattr(PruningLoop, "_table_speedup", lambda self, original: predicted)
    spread = [1.0, 1.6, 2.1, 2.6, 3.2]  # the median alone would say met
    answers = [[1.0] * 5] + [spread] * 3 + [[2.5] * 5] * 20
    with caplog.at_level(logging.WARNING, logger="filterprune"):
        result, _ = _run(monkeypatch, answers)
    assert f"the lookup table's prediction ({predicted:.2f}x) decides" in caplog.text
    assert result.rows[1]["latency_decided_by"] == "lookup table"
    assert (result.rows[1] is result.final_row) is reached
    assert result.stop_reason == "target_reached"  # at once by the table, or later by timing


def test_a_noisy_timing_does_not_decide_even_when_its_rounds_agree():
    rounds = {"round_speedups": [7.0, 7.1, 7.2, 7.3, 8.2]}
    assert latency_verdict(GOAL, rounds) is True
    assert latency_verdict(GOAL, {**rounds, "latency_flags": ["noisy reference"]}) is None
    assert latency_verdict(GOAL, {**rounds, "latency_flags": ["rounds disagree"]}) is True


def test_the_step_shrinks_to_land_on_the_latency_goal(monkeypatch):
    result, _ = _run(monkeypatch, [[1.0] * 5, [1.5] * 5, [2.05] * 5])
    assert result.stop_reason == "target_reached"
    first, second = result.rows[1]["amount"], result.rows[2]["amount"]
    assert first == pytest.approx(0.25)
    # 0.25 gained ln(1.5); 5 % past the rest of the way to 2x takes ln(2.1 / 1.5) of it
    assert second == pytest.approx(0.25 * math.log(2.1 / 1.5) / math.log(1.5), rel=1e-6)


def test_no_pacing_without_a_latency_goal():
    from filterprune.loop.stop import paced_amount

    rows = [{"accepted": True, "speedup": 1.0}, {"accepted": True, "speedup": 1.5, "amount": 0.2}]
    assert paced_amount(PruneConfig(targets=["macs=-50%"]), rows, 0.2) == 0.2
    assert paced_amount(PruneConfig(targets=["latency=-50%"]), rows, 7) == 7  # a count
    assert paced_amount(PruneConfig(targets=["latency=-50%"]), rows, 0.2) < 0.2


def test_a_latency_run_reports_what_its_lookup_table_predicts(monkeypatch):
    from filterprune.measure.latency_table import LatencyTable

    # a table whose layers take time in proportion to their widths (timing is tested in
    # tests/measure; a busy machine can time a narrow layer of this tiny model slower)
    monkeypatch.setattr(LatencyTable, "layer_ms", lambda self, s, cin=None, cout=None:
                        float((cin or s.cin) * (cout or s.cout)))  # fmt: skip
    result, _ = _run(monkeypatch, [[1.0] * 5, [1.5] * 5, [2.05] * 5])
    rows = result.rows
    assert rows[0]["table_speedup"] == 1.0  # the starting model against itself: same entries
    assert rows[-1]["table_speedup"] > 1.0  # narrower layers, less time in the table
    assert PruneConfig(targets=["latency=-50%"]).widths == "measured"


def test_the_report_states_the_tables_error_against_the_measured_speed_up():
    from filterprune.report import iteration_table

    rows = [
        {"iteration": 0, "macs": 100, "speedup": 1.0, "table_speedup": 1.0},
        {"iteration": 1, "macs": 40, "speedup": 2.0, "speedup_low": 1.9, "speedup_high": 2.1,
         "table_speedup": 2.4},
    ]  # fmt: skip
    notes = iteration_table(rows).notes
    assert any("predicted 2.40x" in n and "+20 %" in n for n in notes), notes


def test_a_preempted_timing_does_not_decide_even_when_its_rounds_agree():
    rounds = {"speedup": 2.5, "round_speedups": [2.5] * 5}
    assert latency_verdict(GOAL, rounds) is True
    flagged = {**rounds, "latency_flags": ["preempted (on a core 22% of the time)"]}
    assert latency_verdict(GOAL, flagged) is None


def test_no_timing_again_while_the_table_puts_the_model_far_below_the_goal(monkeypatch):
    spread = [1.0, 1.6, 2.1, 2.6, 3.2]  # undecided each time it is asked
    monkeypatch.setattr(PruningLoop, "_table_speedup", lambda self, original: 1.2)  # 1.8 < 2
    _, asked = _run(monkeypatch, [[1.0] * 5] + [spread] * 50)
    assert len(asked) > 2 and set(asked) == {5}  # each iteration timed once
    monkeypatch.setattr(PruningLoop, "_table_speedup", lambda self, original: 1.5)  # near: 2.25
    _, asked = _run(monkeypatch, [[1.0] * 5] + [spread] * 50)
    assert asked[1:4] == [5, 10, 20]


@pytest.mark.parametrize(("floor", "reached"), [(2.3, True), (1.7, False)])
def test_where_timing_cannot_decide_the_fastest_clean_blocks_do(
    monkeypatch, caplog, floor, reached
):
    # the table would say the opposite of the clean blocks: they decide, the table does not
    monkeypatch.setattr(PruningLoop, "_table_speedup", lambda self, original: 4.0 - floor)
    spread = [1.0, 1.6, 2.1, 2.6, 3.2]
    answers = [[1.0] * 5] + [spread] * 3 + [[2.5] * 5] * 20
    floors: list = []
    with caplog.at_level(logging.WARNING, logger="filterprune"):
        result, _ = _run(monkeypatch, answers, floor=floor, floors=floors)
    assert f"each model's fastest unpreempted block ({floor:.2f}x, from 60 and 40" in caplog.text
    row = result.rows[1]
    assert row["latency_decided_by"] == "fastest unpreempted blocks"
    assert row["floor_speedup"] == floor and row["floor_clean_blocks"] == [40, 60]
    assert (row is result.final_row) is reached
    deciding = [f for f in floors if "seconds" not in f]  # not the start's check of reach
    assert deciding[0] == {"batch_size": 1, "threads": 1}  # the target's batch size and threads


def test_too_few_clean_blocks_leave_the_decision_to_the_table(monkeypatch, caplog):
    monkeypatch.setattr(PruningLoop, "_table_speedup", lambda self, original: 2.5)
    spread = [1.0, 1.6, 2.1, 2.6, 3.2]
    with caplog.at_level(logging.WARNING, logger="filterprune"):
        result, _ = _run(monkeypatch, [[1.0] * 5] + [spread] * 3 + [[2.5] * 5] * 20, floor=None)
    assert result.rows[1]["latency_decided_by"] == "lookup table"
    assert "floor_speedup" not in result.rows[1]
    assert result.rows[1]["floor_clean_blocks"] == [40, 60]  # what was tried is on record


def test_no_clean_block_timing_while_the_table_puts_the_model_far_below(monkeypatch):
    spread = [1.0, 1.6, 2.1, 2.6, 3.2]
    monkeypatch.setattr(PruningLoop, "_table_speedup", lambda self, original: 1.2)  # 1.8 < 2
    floors: list = []
    result, _ = _run(monkeypatch, [[1.0] * 5] + [spread] * 50, floor=5.0, floors=floors)
    assert [f for f in floors if "seconds" not in f] == []  # only the start's check of reach
    assert result.rows[1]["latency_decided_by"] == "lookup table"


def test_a_flagged_final_speed_up_reports_what_clean_blocks_read(monkeypatch):
    from filterprune.report import iteration_table
    from filterprune.report.tables import table_rows

    calls: list[int] = []

    def fake(original, model, example, latency):  # the start, iteration 1, then the final row
        calls.append(1)
        record = _record([1.0] * 5 if len(calls) == 1 else [2.5] * 5)
        if len(calls) == 3:  # the final row's timing: a busy machine
            record["flags"] = ["preempted (on a core 30% of the time)"]
        return [record]

    monkeypatch.setattr(filterprune.measure, "compare_latencies", fake)
    monkeypatch.setattr(filterprune.measure.latency, "floor_speedup",
                        lambda *a, **k: _floor(2.2))  # fmt: skip
    config = PruneConfig(criterion="l1", amount=0.25, finetune=0, final_finetune=1,
                         targets=["latency=-50%"])  # fmt: skip
    result = run_pruning(make_model(), EXAMPLE, config=config, progress=False,
                         finetune=Hooks().finetune, evaluate=Hooks().evaluate)  # fmt: skip
    final = result.final_row
    assert final["iteration"] == "final" and final["floor_speedup"] == 2.2
    assert "floor_speedup" not in result.rows[1]  # an unflagged row is not timed again
    notes = " ".join(iteration_table(table_rows(result.rows)).notes)
    assert "fastest block that no other process interrupted gives 2.20x" in notes


@pytest.mark.parametrize(("thinned", "warned"), [(1.5, True), (3.0, False)])
def test_a_latency_goal_out_of_reach_is_named_before_the_first_step(
    monkeypatch, caplog, thinned, warned
):
    timed: list = []

    def fake_floor(reference, model, example, **kwargs):
        timed.append((reference, model, kwargs))
        return _floor(thinned if "seconds" in kwargs else None)

    monkeypatch.setattr(filterprune.measure, "compare_latencies",
                        lambda *a: [_record([1.0] * 5 if len(timed) < 2 else [2.5] * 5)])  # fmt: skip
    monkeypatch.setattr(filterprune.measure.latency, "floor_speedup", fake_floor)
    config = PruneConfig(criterion="l1", amount=0.25, finetune=0, final_finetune=0,
                         targets=["latency=-50%"], max_pruned_fraction=0.75)  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="filterprune"):
        run_pruning(make_model(), EXAMPLE, config=config, progress=False,
                    evaluate=Hooks().evaluate)  # fmt: skip
    reference, thinned_model, kwargs = timed[0]
    assert kwargs["seconds"] > 0  # the start's check, before any step
    widths = [m.out_channels for m in thinned_model.modules() if isinstance(m, torch.nn.Conv2d)]
    full = [m.out_channels for m in reference.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(w <= max(1, round(0.25 * f)) + 1 for w, f in zip(widths, full, strict=True))
    assert sum(widths) < sum(full)
    said = "a 2.00x speed-up looks out of reach" in caplog.text
    assert said is warned
    if warned:
        assert "runs 1.50x faster" in caplog.text and "--target latency=-21%" in caplog.text


def test_a_reach_check_that_fails_does_not_stop_the_run(monkeypatch, caplog):
    def broken(self, row, model=None, seconds=None):
        if model is not None:  # the start's check
            raise RuntimeError("cannot time this copy")
        return None

    monkeypatch.setattr(PruningLoop, "_floor_fields", broken)
    with caplog.at_level(logging.INFO, logger="filterprune"):
        result, _ = _run(monkeypatch, [[1.0] * 5, [1.5] * 5, [2.05] * 5])
    assert result.stop_reason == "target_reached"
    assert "could not check whether the latency goal is within reach: cannot time" in caplog.text


def test_the_advice_for_a_goal_out_of_reach():
    from filterprune.loop.run import _reachable_advice

    # 85 % of 2.5x is 2.125x: 53 % less time, rounded down towards the reachable
    assert "--target latency=-52%" in _reachable_advice(2.5)
    assert "more pruning" not in _reachable_advice(2.5)  # the run may already remove all
    assert "(--max-pruned-fraction, now 0.9)" in _reachable_advice(2.5, 0.9)
    assert "--target latency=-69%" in _reachable_advice(3.9)  # 85 % of it: 3.315x
    for best in (1.0, 0.8, 1.005, 1.1):  # thinner is hardly faster: no latency target helps
        assert "does not make this model much faster" in _reachable_advice(best)


def _reach_run(monkeypatch, caplog, thinned: float, **changes):
    """A latency run whose start check times the thinned copy at ``thinned`` x (1 ms a call)."""
    monkeypatch.setattr(filterprune.measure, "compare_latencies", lambda *a: [_record([2.5] * 5)])
    monkeypatch.setattr(filterprune.measure.latency, "floor_speedup",
                        lambda *a, **k: _floor(thinned if "seconds" in k else None))  # fmt: skip
    config = PruneConfig(criterion="l1", amount=0.25, finetune=0, final_finetune=0,
                         max_iterations=1, **changes)  # fmt: skip
    with caplog.at_level(logging.INFO, logger="filterprune"):
        run_pruning(make_model(), EXAMPLE, config=config, progress=False)
    return caplog.text


def test_the_reach_check_at_a_maximum_pruned_fraction_of_one(monkeypatch, caplog):
    text = _reach_run(monkeypatch, caplog, 1.5, targets=["latency=-50%"], max_pruned_fraction=1.0)
    assert "could not check" not in text
    assert "every layer at its minimum width (--min-channels 1)" in text
    assert "a 2.00x speed-up looks out of reach" in text and "now 1" not in text


def test_an_absolute_latency_bound_out_of_reach_is_named_too(monkeypatch, caplog):
    text = _reach_run(monkeypatch, caplog, 1.5, targets=["latency<=0.5"])
    assert "latency<=0.5 ms looks out of reach" in text and "takes 1 ms" in text
    assert "latency<=1.2" in text  # the copy's time over the margin, rounded
    caplog.clear()
    assert "looks out of reach" not in _reach_run(monkeypatch, caplog, 1.5,
                                                  targets=["latency<=2"])  # fmt: skip


def test_an_unmet_absolute_latency_bound_is_reported_in_milliseconds():
    from filterprune.loop.stop import unmet_targets

    config = PruneConfig(targets=["latency<=0.1"])
    row = {"latency_ms": 0.42, "speedup": 1.18, "round_speedups": [1.18] * 5}
    assert unmet_targets(config, {"latency_ms": 0.5}, row) == ["latency<=0.1 (reached 0.42 ms)"]
