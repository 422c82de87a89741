"""Crash safety: SIGKILL a real ``filterprune prune`` run at random moments, many times.

After every kill the run folder must be loadable and hold only complete files, no completed
iteration may be lost, and resuming must end with exactly the weights of an uninterrupted run.
The runs are forked from a warm server (kill_server.py), so each one starts in milliseconds.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from rel_tiny import PRUNE, build

from filterprune import load
from filterprune.loop import RunDir

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"
KILLS = 20
SEED = 20240611


class KillServer:
    def __init__(self, log: Path) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(SRC), str(HERE), str(HERE.parent), env.get("PYTHONPATH", "")]
        )
        env["OMP_NUM_THREADS"] = "1"
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "kill_server.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert json.loads(self.proc.stdout.readline()) == {"ready": True}

    def run(self, argv: list[str], kill_after: float | None = None) -> dict:
        request = {"argv": [str(a) for a in argv], "kill_after": kill_after, "log": str(self.log)}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture
def server(tmp_path):
    srv = KillServer(tmp_path / "children.log")
    yield srv
    srv.close()


def _argv(base: Path, run: Path) -> list[str]:
    # --resume on a folder without a run starts one, so every attempt uses the same command
    return [*PRUNE, "--max-iterations", "4", "--final-finetune", "2"] + [
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


def check_after_kill(run: Path, reference: Path) -> int:
    """The killed run's folder is consistent; returns its last completed iteration (-1: none)."""
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
    want = load(reference / state["final"], build)
    for key, value in want.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    ref = _checkpoints(reference)
    for name, data in _checkpoints(run).items():  # every visible checkpoint is complete and exact
        assert data == ref[name], name
    return state["last_completed"]


def assert_same_as_reference(run: Path, reference: Path) -> None:
    assert RunDir(run).read_state() == RunDir(reference).read_state()
    assert _rows(run) == _rows(reference)
    assert _checkpoints(run) == _checkpoints(reference)
    assert not [p.name for p in run.iterdir() if p.name.startswith(".")]  # no temporaries left


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_at_most_the_iteration_in_progress(
    server, baseline_dir, tmp_path
):
    reference = tmp_path / "reference"
    first = server.run(_argv(baseline_dir, reference))
    assert first["status"] == 0, (tmp_path / "children.log").read_text()[-2000:]
    duration = first["seconds"]
    rng = random.Random(SEED)
    run, attempts, kills, finished, last = tmp_path / "run0", 0, 0, 0, -1
    history = []  # (delay, last completed iteration after the kill, or "finished")
    while kills < KILLS:
        attempts += 1
        assert attempts < 5 * KILLS, "the runs make no progress"
        delay = rng.uniform(0.0, duration)
        result = server.run(_argv(baseline_dir, run), kill_after=delay)
        if result["killed"]:
            kills += 1
            done = check_after_kill(run, reference)
            assert done >= last, f"kill {kills} lost iterations {done + 1}..{last}"
            last = done
            history.append((round(delay, 3), done))
        else:  # the run finished before the kill: it must equal the uninterrupted one
            assert result["status"] == 0, (tmp_path / "children.log").read_text()[-2000:]
            assert_same_as_reference(run, reference)
            finished += 1
            history.append((round(delay, 3), "finished"))
            run, last = tmp_path / f"run{finished}", -1
    print(f"run: {duration:.2f} s; kills (delay s, last completed iteration): {history}")
    result = server.run(_argv(baseline_dir, run))
    assert result["status"] == 0, (tmp_path / "children.log").read_text()[-2000:]
    assert_same_as_reference(run, reference)
    final, want = load(run, build).state_dict(), load(reference, build).state_dict()
    assert final.keys() == want.keys()
    assert all(torch.equal(final[k], want[k]) for k in want)
