"""Crash safety: SIGKILL a real ``filterprune prune`` run inside each of its write windows.

The atomic writer marks every window (before and after each rename, before each removal) with a
crash point; ``FILTERPRUNE_TEST_CRASH_AT=N`` makes the N-th one kill the process with SIGKILL.
A traced run lists the windows; the test kills a run once in every kind of window (the first
checkpoint, later checkpoints, the log, state.json, model.json, the final model), and does the
same while a finished run is extended with a longer final finetune. After every kill the folder
must load with ``filterprune eval`` (or say that no checkpoint exists yet) and hold only
complete files, and resuming must end with exactly the state, log and weights of an
uninterrupted run. The runs are forked from a warm server (kill_server.py), so each one starts
in milliseconds.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from rel_tiny import DATA, PRUNE, TRUSTED, build

from filterprune import load
from filterprune.loop import RunDir
from filterprune.store.files import is_leftover

from conftest import KillServer

CRASH_AT, CRASH_TRACE = "FILTERPRUNE_TEST_CRASH_AT", "FILTERPRUNE_TEST_CRASH_TRACE"


@pytest.fixture
def server(cli_server) -> KillServer:
    # the session's warm server: its log grows, and every check reads what a run added to it
    return cli_server


def _argv(base: Path, run: Path, final: int = 2) -> list[str]:
    # --resume on a folder without a run starts one, so every attempt uses the same command
    return [*PRUNE, "--max-iterations", "3", "--final-finetune", str(final)] + [
        "--load",
        str(base),
        "--run-dir",
        str(run),
        "--resume",
    ]


def _rows(run: Path) -> list[dict]:
    # wall-clock time and the machine record (its load at the start) differ between runs
    ignored = ("seconds", "machine")
    return [{k: v for k, v in r.items() if k not in ignored} for r in RunDir(run).read_rows()]


def _checkpoints(run: Path) -> dict[str, bytes]:
    found = run.glob("*/weights.safetensors")  # temporaries (".iter_003.x.tmp") are not visible
    return {p.parent.name: p.read_bytes() for p in found if not p.parent.name.startswith(".")}


def check_after_kill(run: Path, reference: Path, earlier: Path | None = None) -> int:
    """The killed run's folder is consistent; returns its last completed iteration (-1: none).

    ``earlier``: the finished run a killed extension started from (its final model may still
    be the one state.json points to)."""
    if not RunDir(run).exists():  # killed before its first checkpoint: nothing to keep
        assert not (run / "iter_001").exists()
        return -1
    state = RunDir(run).read_state()
    visible = [p for p in run.rglob("*") if not any(part.startswith(".") for part in p.parts)]
    for path in visible:
        if path.suffix == ".json":
            json.loads(path.read_text())  # complete JSON: nothing half-written is visible
    rows = _rows(run)
    assert rows[: state["last_completed"] + 1] == _rows(reference)[: state["last_completed"] + 1]
    model = load(run, build)  # the model the run folder stands for
    known = [r for r in (reference, earlier) if r is not None and (r / state["final"]).is_dir()]
    want = load(known[0] / state["final"], build)
    for key, value in want.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    ref = {**(_checkpoints(earlier) if earlier is not None else {}), **_checkpoints(reference)}
    for name, data in _checkpoints(run).items():  # every visible checkpoint is complete and exact
        assert data == ref[name], name
    return state["last_completed"]


def assert_same_as_reference(run: Path, reference: Path) -> None:
    assert RunDir(run).read_state() == RunDir(reference).read_state()
    assert _rows(run) == _rows(reference)
    assert _checkpoints(run) == _checkpoints(reference)
    assert not [p.name for p in run.iterdir() if is_leftover(p.name)]  # no temporaries left


def _windows(server: KillServer, argv: list[str], trace: Path) -> list[tuple[int, str]]:
    """(number, label) of every write window of the command, from a traced run."""
    result = server.run(argv, env={CRASH_TRACE: str(trace)})
    assert result["status"] == 0, server.log.read_text()[-2000:]
    return [
        (int(n), label)
        for n, label in (line.split(" ", 1) for line in trace.read_text().splitlines())
    ]


def _kinds(windows: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """The first window of each kind: later iterations' checkpoints count as one kind."""
    seen, chosen = set(), []
    for number, label in windows:
        kind = re.sub(r"iter_0*[1-9]\d*", "iter_N", label)
        kind = re.sub(r"\.[0-9a-f]{8}\.", ".X.", kind)  # temporary names
        if kind not in seen:
            seen.add(kind)
            chosen.append((number, label))
    return chosen


def _eval(server: KillServer, run: Path) -> dict:
    argv = ["eval", "--load", run, *TRUSTED, "--task", "classify", *DATA, "-q", "--json"]
    return server.run(argv)


def _kill_and_recover(server, argv, run, reference, number, label, log, earlier=None) -> None:
    result = server.run(argv, env={CRASH_AT: str(number)})
    assert result["killed"], f"window {number} ({label}) was not reached"
    before = log.read_text() if log.exists() else ""
    evaluated = _eval(server, run)
    said = (log.read_text() if log.exists() else "")[len(before) :]
    if RunDir(run).exists() or (run / "iter_000" / "weights.safetensors").exists():
        assert evaluated["status"] == 0, f"after a kill at {label}: {said[-1500:]}"
        check_after_kill(run, reference, earlier)
    else:  # killed before the first checkpoint: eval says so, in one line
        assert evaluated["status"] == 1, said
        assert "filterprune: error:" in said and "internal error" not in said, said
    again = server.run(argv)
    assert again["status"] == 0, f"resume after a kill at {label}: {log.read_text()[-2000:]}"
    assert_same_as_reference(run, reference)


@pytest.mark.slow
def test_sigkill_in_every_write_window_then_resume_to_identical_weights(
    server, baseline_dir, tmp_path
):
    reference = tmp_path / "reference"
    windows = _windows(server, _argv(baseline_dir, reference), tmp_path / "trace1")
    chosen = _kinds(windows)
    labels = {label for _, label in chosen}
    for needed in ("iter_000", "state.json", "log.jsonl", "model.json", "final"):
        assert any(needed in label for label in labels), (needed, sorted(labels))
    for i, (number, label) in enumerate(chosen):
        run = tmp_path / f"run{i}"
        _kill_and_recover(
            server, _argv(baseline_dir, run), run, reference, number, label, server.log
        )
    print(f"{len(chosen)} of {len(windows)} windows killed in: {[label for _, label in chosen]}")


@pytest.mark.slow
def test_sigkill_while_extending_a_finished_run(server, baseline_dir, tmp_path):
    """--resume with a longer final finetune: the new final model goes to a new folder, state.json
    switches to it, and only then is the old one removed; a kill anywhere loses nothing."""
    first = tmp_path / "first"
    assert server.run(_argv(baseline_dir, first))["status"] == 0
    reference = Path(shutil.copytree(first, tmp_path / "reference"))
    extend = _argv(baseline_dir, reference, final=4)
    windows = _windows(server, extend, tmp_path / "trace")
    assert RunDir(reference).read_state()["final"] == "final_2"
    assert not (reference / "final").exists()  # the old final model was removed afterwards
    labels = [label for _, label in windows]
    assert "before rename final_2" in labels and "before removing final" in labels, labels
    ends = labels.index("before removing final") + 1  # the rest writes the report
    for i, (number, label) in enumerate(windows[:ends]):
        run = Path(shutil.copytree(first, tmp_path / f"run{i}"))
        argv = _argv(baseline_dir, run, final=4)
        _kill_and_recover(server, argv, run, reference, number, label, server.log, first)
