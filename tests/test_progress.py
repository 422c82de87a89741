"""No silent long runs: progress shows by default, as plain lines off a terminal, and switches off."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from filterprune import _progress
from filterprune._progress import progress

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FILTERPRUNE_")}
    env["PYTHONPATH"] = os.pathsep.join([SRC, env.get("PYTHONPATH", "")])
    return {**env, **extra}


def test_off_a_terminal_a_loop_prints_plain_lines(monkeypatch, capsys):
    monkeypatch.setenv("FILTERPRUNE_PROGRESS_EVERY", "0")
    monkeypatch.delenv("FILTERPRUNE_PROGRESS", raising=False)
    assert list(progress(range(3), total=3, desc="finetune")) == [0, 1, 2]
    err = capsys.readouterr().err
    assert "finetune: 1/3 it (33 %) after" in err and "finetune: 3/3 it (100 %) done in" in err
    assert "\r" not in err


def test_plain_lines_wait_for_the_interval(monkeypatch, capsys):
    monkeypatch.setenv("FILTERPRUNE_PROGRESS_EVERY", "3600")
    monkeypatch.delenv("FILTERPRUNE_PROGRESS", raising=False)
    assert list(progress(range(3), desc="evaluate")) == [0, 1, 2]
    assert capsys.readouterr().err == ""  # a short loop says nothing


def test_a_loop_after_a_silent_stretch_speaks_at_its_first_item(monkeypatch, capsys):
    # the process printed its last progress line 20 s ago (a ranking and a removal since): the
    # next loop says where it is at once instead of waiting out its own interval
    monkeypatch.setenv("FILTERPRUNE_PROGRESS_EVERY", "10")
    monkeypatch.delenv("FILTERPRUNE_PROGRESS", raising=False)
    monkeypatch.setattr(_progress, "_last_line", [time.monotonic() - 20])
    assert list(progress(range(3), total=3, desc="finetune")) == [0, 1, 2]
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("finetune: 1/3 it (33 %) after") and len(lines) == 2, lines
    assert lines[1].startswith("finetune: 3/3 it (100 %) done in"), lines
    # it spoke: the next short loop waits for the interval again
    assert list(progress(range(3), total=3, desc="evaluate")) == [0, 1, 2]
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(("enabled", "env"), [(False, ""), (True, "0")])
def test_progress_switches_off(monkeypatch, capsys, enabled, env):
    monkeypatch.setenv("FILTERPRUNE_PROGRESS_EVERY", "0")
    monkeypatch.setenv("FILTERPRUNE_PROGRESS", env)
    assert list(progress(range(3), enabled=enabled, desc="finetune")) == [0, 1, 2]
    assert capsys.readouterr().err == ""


@pytest.mark.slow
def test_train_off_a_terminal_prints_progress_lines(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "filterprune", "train", "--task", "classify",
         "--model", "vgg16_bn", "--model-arg", "width=0.0625", "--model-arg", "head=cifar",
         "--steps", "4", "--batch-size", "4", "--limit", "16", "--out", "runs/base"],
        cwd=tmp_path, env=_env(FILTERPRUNE_PROGRESS_EVERY="0"), capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "finetune: 1/4 it (25 %) after" in done.stderr
    assert "finetune: 4/4 it (100 %) done in" in done.stderr
    assert "evaluate classify:" in done.stderr
    assert "\r" not in done.stderr


RUN_PRUNING = textwrap.dedent(
    """
    import sys
    import torch
    from torch import nn
    import filterprune as fp

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
    config = fp.PruneConfig(criterion="l1", amount=0.25, max_iterations=2, finetune=0,
                            collapse_ratio=None)
    kwargs = eval(sys.argv[1])
    result = fp.run_pruning(model, torch.randn(1, 3, 8, 8), config=config,
                            evaluate=lambda m: {"accuracy": 0.9}, **kwargs)
    print(result.stop_reason)
    """
)


@pytest.mark.parametrize(
    ("kwargs", "env", "shown"),
    [("{}", {}, True), ("{'progress': False}", {}, False), ("{}", {"FILTERPRUNE_PROGRESS": "0"}, False)],
)  # fmt: skip
def test_run_pruning_reports_to_stderr_by_default(tmp_path, kwargs, env, shown):
    done = subprocess.run(
        [sys.executable, "-c", RUN_PRUNING, kwargs], cwd=tmp_path, env=_env(**env),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "max_iterations"
    if shown:
        assert "filterprune: evaluating the starting model" in done.stderr
        assert "filterprune: iteration 1: removed" in done.stderr
        assert "filterprune: iteration 2: removed" in done.stderr
        assert "filterprune: stopped:" in done.stderr
    else:
        assert done.stderr == ""
