"""Two processes on one run folder: one writes, the other is refused, readers read.

Every test starts real processes through the installed ``filterprune`` script (or a Python
process that holds the lock the way a run does), so the lock is exercised across processes,
and a ``kill -9`` of the holder must leave no stale lock.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rel_tiny import DATA, PRUNE, build

import filterprune as fp
from filterprune import load
from filterprune.loop import RunDir
from filterprune.store.lock import LOCK_NAME, holder_of, run_lock

HERE = Path(__file__).resolve().parent
SCRIPT = Path(sys.executable).with_name("filterprune")
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join([str(HERE.parents[1] / "src"), str(HERE), str(HERE.parent)]),
    "OMP_NUM_THREADS": "1",
}


def _prune(base: Path, run: Path, *extra: str) -> list[str]:
    return [str(SCRIPT), *PRUNE, "--load", str(base), "--run-dir", str(run), *extra]


@pytest.fixture(scope="module")
def finished_run(baseline_dir, tmp_path_factory) -> Path:
    """One finished run of the shared baseline, made once; each test works on its own copy."""
    run = tmp_path_factory.mktemp("finished") / "run"
    assert subprocess.run(_prune(baseline_dir, run), env=ENV, capture_output=True).returncode == 0
    return run


def _copy(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "run"))


def _start(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ENV)  # fmt: skip


def _holder(run: Path) -> subprocess.Popen:
    """A process that takes the run folder's lock, says so, and keeps it until killed."""
    code = (
        "import sys, time\n"
        "from filterprune.store.lock import run_lock\n"
        f"with run_lock({str(run)!r}):\n"
        "    print('locked', flush=True)\n"
        "    time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env=ENV)  # fmt: skip
    assert proc.stdout.readline().strip() == "locked"
    return proc


def _files(folder: Path) -> dict[str, bytes]:
    found = folder.rglob("*")
    return {str(p.relative_to(folder)): p.read_bytes() for p in found if p.is_file()}


def _assert_one_complete_run(run: Path) -> None:
    state = RunDir(run).read_state()
    config = json.loads((run / "config.json").read_text())
    assert state["finished"] and config  # the config is the one that run wrote, and parses
    assert not [p for p in run.iterdir() if p.name.startswith(".") and p.name != LOCK_NAME]
    load(run, build)


def test_two_prunes_started_at_once_on_a_new_folder(baseline, tmp_path):
    run = tmp_path / "run"
    procs = [_start(_prune(baseline, run)) for _ in range(2)]
    outs = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    codes = sorted(code for code, _, _ in outs)
    assert codes == [0, 1], outs
    refused = next(err for code, _, err in outs if code == 1)
    assert refused.startswith("filterprune: error: ") and refused.count("\n") == 1, refused
    # refused by the lock while the other writes, or, if the other had already finished, by the
    # run it left (never an internal error, never a second writer)
    assert "is being written by process" in refused or "already holds a run" in refused, refused
    _assert_one_complete_run(run)


def test_resume_while_another_process_writes_is_refused_naming_it(
    baseline_dir, finished_run, tmp_path
):
    run = _copy(finished_run, tmp_path)
    before = _files(run)
    holder = _holder(run)
    try:
        done = subprocess.run(_prune(baseline_dir, run, "--resume", "--max-iterations", "5"),
                              env=ENV, capture_output=True, text=True, timeout=300)  # fmt: skip
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 1, done.stderr
    err = done.stderr
    assert err.startswith("filterprune: error: run folder") and err.count("\n") == 1, err
    assert f"process {holder.pid}" in err and "run_lock" in err and "since" in err, err
    after = _files(run)
    after.pop(LOCK_NAME)
    before.pop(LOCK_NAME, None)
    assert after == before  # not a byte of the run changed


def test_kill_9_leaves_no_stale_lock(baseline, tmp_path):
    """A real prune is killed while it holds the lock; the next command takes it over."""
    run = tmp_path / "run"
    proc = _start(_prune(baseline, run, "--max-iterations", "50", "--amount", "0.01"))
    deadline = time.monotonic() + 120
    while holder_of(run) is None or holder_of(run).get("pid") != proc.pid:
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = subprocess.run(_prune(baseline, run, "--resume"), env=ENV, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    _assert_one_complete_run(run)


def test_eval_reads_the_last_complete_checkpoint_while_a_run_writes(finished_run, tmp_path):
    run = _copy(finished_run, tmp_path)
    holder = _holder(run)
    try:
        argv = [str(SCRIPT), "eval", "--load", str(run), "--trust-model-code", *DATA]
        done = subprocess.run(argv, env=ENV, capture_output=True, text=True, timeout=300)
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 0, done.stderr
    assert "accuracy" in done.stdout, done.stdout


def test_the_python_api_is_refused_too_and_the_lock_is_reentrant(tmp_path):
    run = tmp_path / "run"
    holder = _holder(run)
    try:
        model = build()
        import torch

        config = fp.PruneConfig(max_iterations=1)
        with pytest.raises(fp.RunLockedError, match=f"process {holder.pid}"):
            fp.run_pruning(model, torch.randn(1, 3, 8, 8), config=config, run_dir=run)
        assert isinstance(fp.RunLockedError("x"), RuntimeError)
    finally:
        holder.kill()
        holder.wait()
    # once the holder is gone, one process may take the lock several times over (CLI, recipe,
    # loop), and another process is refused meanwhile
    with run_lock(run), run_lock(run):
        probe = subprocess.run([sys.executable, "-c", (
            "from filterprune.store.lock import run_lock\n"
            f"with run_lock({str(run)!r}): pass")], env=ENV, capture_output=True, text=True)  # fmt: skip
        assert probe.returncode == 1 and "RunLockedError" in probe.stderr, probe.stderr
    probe = subprocess.run([sys.executable, "-c", (
        "from filterprune.store.lock import run_lock\n"
        f"with run_lock({str(run)!r}): pass")], env=ENV, capture_output=True)  # fmt: skip
    assert probe.returncode == 0


@pytest.mark.parametrize("kind", ["report", "demo"])
def test_every_folder_filterprune_writes_has_one_writer(finished_run, tmp_path, kind):
    """A report folder and the demo's folder are locked like a run folder: a second writer is
    refused naming the first, and nothing the first wrote is touched (the demo would otherwise
    remove it as a previous demo's files, a report take it over as an interrupted report's)."""
    run = _copy(finished_run, tmp_path) if kind == "report" else tmp_path / "run"
    folder = run / "report" if kind == "report" else tmp_path / "demo"
    folder.mkdir(exist_ok=True)
    (folder / "being-written.csv").write_text("a,b\n")
    before = _files(folder)
    holder = _holder(folder)
    try:
        argv = {
            "report": [str(SCRIPT), "report", str(run)],
            "demo": [str(SCRIPT), "demo", "--quick", "--run-dir", str(folder)],
        }[kind]
        done = subprocess.run(argv, env=ENV, capture_output=True, text=True, timeout=300)
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 1, done.stderr
    err = done.stderr
    assert err.startswith(f"filterprune: error: {kind} folder") and err.count("\n") == 1, err
    assert f"process {holder.pid}" in err, err
    after = _files(folder)
    assert {k: v for k, v in after.items() if k != LOCK_NAME} == {
        k: v for k, v in before.items() if k != LOCK_NAME
    }


def test_a_refused_or_empty_lock_leaves_nothing_behind(tmp_path):
    folder = tmp_path / "new" / "deeper"
    with run_lock(folder):
        assert (folder / LOCK_NAME).is_file()
    assert not (tmp_path / "new").exists()  # nothing was written: nothing stays
    kept = tmp_path / "kept"
    with run_lock(kept):
        (kept / "state.json").write_text("{}")
    assert (kept / "state.json").is_file()
