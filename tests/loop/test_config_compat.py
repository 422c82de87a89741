"""Run folders written before the config was nested (flat ``config.json`` format 1) still load.

``data/flat_run_v1`` is a run interrupted in the finetuning of iteration 2, written by the code
whose ``PruneConfig`` had 32 flat fields: its ``config.json`` and the config inside
``state.json`` are flat. Resuming it must finish the run as an uninterrupted run would.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from loop_tiny import Hooks, make_model

from filterprune.loop import ConfigError, PruneConfig, RunDir, load, run_pruning
from filterprune.report.run_report import run_settings

FIXTURE = Path(__file__).parent / "data" / "flat_run_v1"
#: The settings the fixture was written with, in the flat keyword form.
FLAT = {
    "amount": 0.25,
    "finetune": 3,
    "max_iterations": 3,
    "final_finetune": 2,
    "seed": 11,
    "criterion": "l1",
    "targets": ("macs=-90%",),
    "metric": "accuracy",
    "max_metric_drop": 0.9,
    "include": ("conv*",),
    "latency": {"threads": None},  # the default when the fixture was written (now 1)
    # the defaults when it was written, before one recipe became every entry point's default
    "flops_reg": 0.0,
    "scope": None,  # per group for a fraction without a cost term
    "max_layer_fraction": 0.25,
}
_STRUCTURE = ("iteration", "removed", "removed_total", "params", "macs", "channels", "accepted")


def _copy(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(FIXTURE, run)
    return run


def test_the_flat_config_json_reads_as_the_flat_keywords():
    text = (FIXTURE / "config.json").read_text()
    assert json.loads(text)["format"] == 1 and "criterion" in json.loads(text)  # flat, as written
    config = PruneConfig.from_json(text, source="config.json")
    assert config == PruneConfig(**FLAT)
    state = json.loads((FIXTURE / "state.json").read_text())
    assert PruneConfig.from_dict(state["config"]) == config


def test_a_flat_run_folder_resumes_like_an_uninterrupted_run(example, tmp_path):
    reference = run_pruning(
        make_model(),
        example,
        config=PruneConfig(**FLAT),
        run_dir=tmp_path / "reference",
        progress=False,
        **Hooks().kwargs(),
    )
    run = _copy(tmp_path)
    hooks = Hooks()
    resumed = run_pruning(
        make_model(),
        example,
        config=PruneConfig(**FLAT),
        run_dir=run,
        resume=True,
        progress=False,
        **hooks.kwargs(),
    )
    assert [start for start, _ in hooks.finetune_calls] == [3, 6, 9]  # iterations 2, 3, final
    assert resumed.stop_reason == reference.stop_reason == "max_iterations"
    assert [[r.get(k) for k in _STRUCTURE] for r in resumed.rows] == [
        [r.get(k) for k in _STRUCTURE] for r in reference.rows
    ]
    for got, want in zip(resumed.rows, reference.rows, strict=True):
        assert got["metrics"] == pytest.approx(want["metrics"], rel=1e-4, abs=1e-6)
    assert resumed.plan == reference.plan
    # the resumed folder holds the config as this version writes it, and it reads back
    again = PruneConfig.from_json(RunDir(run).read_config_json())
    assert again == PruneConfig(**FLAT)
    assert load(run, make_model).conv1.out_channels == resumed.model.conv1.out_channels


def test_a_flat_run_folder_still_refuses_a_different_config(example, tmp_path):
    run = _copy(tmp_path)
    with pytest.raises(ConfigError, match=r"different config \(amount differ"):
        run_pruning(
            make_model(),
            example,
            config=PruneConfig(**{**FLAT, "amount": 0.5}),
            run_dir=run,
            resume=True,
            progress=False,
            **Hooks().kwargs(),
        )


def test_the_run_report_reads_flat_and_nested_config_files(example, tmp_path):
    old = {r["setting"]: r["value"] for r in run_settings(FIXTURE).rows}
    run = _copy(tmp_path)
    RunDir(run).write_config(PruneConfig(**FLAT).to_json())  # the same settings, nested
    assert json.loads(RunDir(run).read_config_json())["format"] == 2
    new = {r["setting"]: r["value"] for r in run_settings(run).rows}
    assert old == new
    assert old["criterion"].startswith("l1") and old["amount / schedule"] == "0.25"
    assert old["finetuning"] == "3 steps per iteration, 2 steps final"
    assert "macs=-90%" in old["targets"] and old["scope"] == "per_group"
