"""The run report describes the model a run keeps, never a rejected last iteration, and its
settings say what the run measured and finetuned. Built from a hand-written run folder (the
checkpoints of tests/loop/data/flat_run_v1, a log and state written here): no training."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from filterprune.loop import PruneConfig, RunDir
from filterprune.report import write_run_report
from filterprune.report.run_report import run_settings

FIXTURE = Path(__file__).parents[1] / "loop" / "data" / "flat_run_v1"


def _timing(speedup: float, model_ms: float) -> dict:
    record = {"device": "cpu", "batch_size": 1, "median_ms": model_ms, "speedup": speedup,
              "original_median_ms": 20.0, "flags": []}  # fmt: skip
    return {"latency_ms": model_ms, "original_latency_ms": 20.0, "speedup": speedup,
            "speedup_low": speedup - 0.05, "speedup_high": speedup + 0.05,
            "round_speedups": [speedup] * 5, "latency_flags": [],
            "latency": [record]}  # fmt: skip


def _run(tmp_path: Path, *, finetuning: dict, final_row: bool = False) -> Path:
    """Iteration 1 kept (2.01x, accuracy 79.72 %), iteration 2 rejected (2.10x, 38.06 %)."""
    run = tmp_path / "run"
    shutil.copytree(FIXTURE, run)
    config = PruneConfig(targets=["latency=-60%"], metric="accuracy", **finetuning)
    RunDir(run).write_config(config.to_json())
    lines = (FIXTURE / "log.jsonl").read_text().splitlines()
    row0, row1 = (json.loads(line) for line in lines)
    row0.update(metrics={"accuracy": 0.8}, **_timing(1.0, 20.0))
    row1.update(metrics={"accuracy": 0.7972}, **_timing(2.01, 9.95))
    rejected = {**row1, "iteration": 2, "accepted": False, "metrics": {"accuracy": 0.3806},
                "macs": 20_000, "params": 300, "size_mb": 0.002, **_timing(2.1, 9.52)}  # fmt: skip
    rows = [row0, row1, rejected]
    if final_row:
        rows.append({**row1, "iteration": "final", "metrics": {"accuracy": 0.7990}})
    RunDir(run).write_log(rows)
    state = json.loads((FIXTURE / "state.json").read_text())
    state.update(last_completed=2, finished=True, stop_reason="metric_floor")
    (run / "state.json").write_text(json.dumps(state))
    return run


def test_summary_and_iteration_table_describe_the_kept_iteration(tmp_path):
    run = _run(tmp_path, finetuning={"finetune": 20})
    write_run_report(run, plots=False)
    report = run / "report"
    for name in ("summary.md", "iterations.md"):
        text = (report / name).read_text()
        notes = "\n".join(line for line in text.splitlines() if line.startswith("* "))
        assert "Measured speed-up: 2.01x" in notes and "2.10x" not in notes
        assert "accuracy: 80.00 % → 79.72 %" in notes and "38.06 %" not in notes
        assert "the kept model, iteration 1" in notes
        assert "| 2 | rejected |" in text and "| 1 | kept |" in text  # the rows stay, marked
    data = json.loads((report / "iterations.json").read_text())
    assert [r["status"] for r in data["rows"]] == ["accepted", "kept", "rejected"]
    # the latency table marks the rejected iteration too
    latency = (report / "latency.md").read_text()
    assert "| 2 | rejected | cpu |" in latency and "| 1 | accepted | cpu |" in latency


def test_settings_say_the_run_timed_its_models_and_had_no_final_pass(tmp_path):
    run = _run(tmp_path, finetuning={"finetune": 20})
    settings = {r["setting"]: r["value"] for r in run_settings(run).rows}
    # a latency target times every iteration, without --latency (measure_latency stays off)
    assert settings["latency"].startswith("batch 1, 5 alternating rounds beside the original")
    assert (
        "kept model (iteration 1): 9.95 ms, original 20 ms, speed-up 2.01x" in settings["latency"]
    )
    assert "2.10" not in settings["latency"]
    # README: with a per-iteration budget given and no final one, no final finetuning
    assert settings["finetuning"] == (
        "20 steps per iteration, no final finetuning (only a per-iteration budget was given)"
    )
    written = write_run_report(run, plots=False).files
    summary = next(p for p in written if p.name == "summary.md").read_text()
    assert "not measured" not in summary and "default final" not in summary


@pytest.mark.parametrize(
    ("finetuning", "final_row", "expected"),
    [
        ({}, True, "100 steps (default) per iteration, 300 steps (default) final"),
        ({"finetune": 20, "final_finetune": 50}, True, "20 steps per iteration, 50 steps final"),
        ({"final_finetune": 0}, False, "100 steps (default) per iteration, no final finetuning"),
        ({"final_finetune": 50}, False,  # finished without a final row: none was run
         "100 steps (default) per iteration, no final finetuning (the run recorded none)"),
    ],
)  # fmt: skip
def test_finetuning_setting_says_what_the_run_did(tmp_path, finetuning, final_row, expected):
    run = _run(tmp_path, finetuning=finetuning, final_row=final_row)
    assert {r["setting"]: r["value"] for r in run_settings(run).rows}["finetuning"] == expected


def test_a_run_that_timed_nothing_says_not_measured(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(FIXTURE, run)
    assert {r["setting"]: r["value"] for r in run_settings(run).rows}["latency"] == "not measured"


def test_a_flagged_kept_figure_names_the_command_that_times_it_again(tmp_path):
    run = _run(tmp_path, finetuning={"finetune": 20})
    rows = RunDir(run).read_rows()
    rows[1]["latency_flags"] = ["preempted (on a core 30% of the time)"]
    RunDir(run).write_log(rows)
    write_run_report(run, plots=False)
    notes = (run / "report" / "summary.md").read_text()
    command = f"filterprune eval --load {run} --compare {run / 'iter_000'} --latency"
    assert command in notes and "RUN" not in notes.replace(str(run), "")
    assert (run / "iter_000").is_dir()  # the starting model the command compares against
