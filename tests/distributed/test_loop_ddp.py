"""The pruning loop and the CLI under torch.distributed: two gloo processes on CPU, loopback only.

As in ``test_ddp.py``, the ranks are subprocesses with the environment torchrun would set, every
join and collective has a timeout, and the parent kills them after a deadline, so a rank that
waits for another fails the test instead of hanging it. Results come back through files.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

import filterprune as fp
from filterprune import distributed as fpd
from filterprune.loop import RunDir
from filterprune.store.files import is_leftover
from torchrun_abort import teardown_abort

if not (dist.is_available() and dist.is_gloo_available()):
    pytest.skip("torch.distributed with the gloo backend is not available", allow_module_level=True)

import loop_worker  # noqa: E402  (tests/distributed is on sys.path, like ddp_worker)

HERE = Path(__file__).resolve().parent
WORLD = 2


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


#: What a failed 2-rank launch printed when the failure was the machine's, not the code's: the
#: runtime's abort at exit, or another process taking the rendezvous port between
#: :func:`_free_port` and the ranks' bind. Such a launch is run once more, on a new port.
TRANSIENT = ("Address already in use", "Connection refused", "Connection reset by peer")


def launch(workdir: Path, argv: list[str], *, timeout: float) -> list[str]:
    """Run ``python ARGV`` as 2 ranks; fail with their output if one fails or they hang.

    A failure of the machine's (:data:`TRANSIENT`, or the runtime's abort at exit) is retried
    once, with a warning carrying the first attempt's output. Returns each rank's output
    (stdout and stderr together).
    """
    try:
        return _launch(workdir, argv, timeout=timeout)
    except _Transient as first:
        warnings.warn(f"2-rank launch retried after a transient failure:\n{first}", stacklevel=2)
        return _launch(workdir, argv, timeout=timeout)


class _Transient(Exception):
    """A launch that failed the way :data:`TRANSIENT` describes."""


def _launch(workdir: Path, argv: list[str], *, timeout: float) -> list[str]:
    src = str(Path(fp.__file__).resolve().parents[1])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
        "WORLD_SIZE": str(WORLD),
        "LOCAL_WORLD_SIZE": str(WORLD),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(_free_port()),
    }
    if Path("/sys/class/net/lo").exists():  # Linux: keep gloo on the loopback interface
        env["GLOO_SOCKET_IFNAME"] = "lo"
    procs, paths = [], [workdir / f"out_{r}.txt" for r in range(WORLD)]
    for r, path in enumerate(paths):
        with open(path, "w") as log:  # the child keeps its own handle
            rank_env = {**env, "RANK": str(r), "LOCAL_RANK": str(r)}
            procs.append(
                subprocess.Popen(
                    [sys.executable, *argv], cwd=workdir, env=rank_env, stdout=log, stderr=log
                )
            )
    deadline = time.monotonic() + timeout
    try:
        for p in procs:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
            p.wait(timeout=10)
        pytest.fail(f"ranks did not finish in {timeout:g}s:\n{_tails(paths)}")
    codes = [p.returncode for p in procs]
    if any(codes):
        outputs = [path.read_text() for path in paths]
        if any(teardown_abort(o) or any(t in o for t in TRANSIENT) for o in outputs):
            raise _Transient(f"ranks exited with {codes}:\n{_tails(paths)}")
        pytest.fail(f"ranks exited with {codes}:\n{_tails(paths)}")
    return [path.read_text() for path in paths]


def _tails(paths: list[Path]) -> str:
    return "\n".join(f"--- rank {r} ---\n{p.read_text()[-4000:]}" for r, p in enumerate(paths))


# ----- run_pruning on 2 ranks --------------------------------------------------------------------
@pytest.fixture(scope="module")
def loop_run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("loop_ddp")
    launch(workdir, [str(HERE / "loop_worker.py"), str(workdir)], timeout=90)
    return workdir


def _results(workdir: Path) -> list[dict]:
    return [json.loads((workdir / f"loop_{r}.json").read_text()) for r in range(WORLD)]


def _tensors(workdir: Path) -> list[dict]:
    return [torch.load(workdir / f"loop_{r}.pt", weights_only=True) for r in range(WORLD)]


def test_ranks_with_different_shards_end_with_the_same_plan_and_weights(loop_run):
    full = [r["full"] for r in _results(loop_run)]
    assert full[0]["removed"] > 0
    assert full[0]["digest"] == full[1]["digest"]
    assert full[0]["rows"] == full[1]["rows"]  # rank 0's metrics and decisions everywhere
    assert [row["iteration"] for row in full[0]["rows"]] == [0, 1, 2, "final"]
    assert full[0]["stop_reason"] == full[1]["stop_reason"] == "max_iterations"
    assert [row["ranking_batches"] for row in full[0]["rows"]] == [0, 2, 2, 0]
    assert full[0]["unwrapped"] == "Net"

    states = [t["full"]["state"] for t in _tensors(loop_run)]
    assert states[0].keys() == states[1].keys()
    for name in states[0]:  # BatchNorm running statistics included: rank 0's are copied
        assert torch.equal(states[0][name], states[1][name]), name


def test_finetuning_gets_a_new_ddp_wrapper_after_every_removal(loop_run):
    for result in _results(loop_run):
        calls = result["full"]["calls"]
        assert [c["type"] for c in calls] == ["DistributedDataParallel"] * 3
        assert [c["new"] for c in calls] == [
            True,
            True,
            False,
        ]  # the final finetune removes nothing
        steps = loop_worker.FINETUNE_STEPS
        assert [c["start"] for c in calls] == [0, steps, 2 * steps]


def test_rank_zero_metrics_decide_for_every_rank(loop_run):
    results = _results(loop_run)
    assert set(results[1]["full"]["votes"]) == {0.0}  # below the floor on rank 1 ...
    for result in results:
        rows = result["full"]["rows"]
        assert all(row["accepted"] for row in rows)  # ... but rank 0 accepts, so everyone does
        assert {row["metrics"]["vote"] for row in rows} == {1.0}
        assert result["full"]["stop_reason"] == "max_iterations"


def test_only_rank_zero_writes_the_run_folder_and_logs(loop_run):
    results = _results(loop_run)
    assert results[1]["full"]["writes"] == [] and results[1]["resume"]["writes"] == []
    assert results[1]["full"]["logs"] == []
    written = {Path(p).name for p in results[0]["full"]["writes"]}
    assert {"config.json", "state.json", "log.jsonl", "weights.safetensors"} <= written
    assert any(line.startswith("iteration 2:") for line in results[0]["full"]["logs"])
    assert sorted(p.name for p in (loop_run / "run").iterdir() if not p.name.startswith(".")) == [
        "MODEL.txt",  # the model is not built in: which factory to pass, for eval
        "config.json",
        "final",
        "iter_000",
        "iter_001",
        "iter_002",
        "log.jsonl",
        "state.json",
    ]


def test_recovery_follows_rank_zeros_metric_on_every_rank(loop_run):
    results, tensors = _results(loop_run), _tensors(loop_run)
    assert results[0]["recovery"]["votes"] == [1.0, 0.0, 1.0]  # rank 0: miss, then recovered
    assert results[1]["recovery"]["votes"] == [1.0, 1.0, 0.0]  # rank 1 would decide the opposite
    steps = loop_worker.FINETUNE_STEPS
    for result in results:
        rec = result["recovery"]
        assert [row["iteration"] for row in rec["rows"]] == [0, 1]
        assert rec["rows"][1]["recovery"] == 1 and rec["rows"][1]["accepted"]
        assert rec["rows"][1]["finetune"] == f"{2 * steps} steps (with 1 recovery)"
        assert [c["start"] for c in rec["calls"]] == [0, steps]  # one recovery on every rank
        assert rec["stop_reason"] == "max_iterations"
    assert results[0]["recovery"]["digest"] == results[1]["recovery"]["digest"]
    states = [t["recovery"]["state"] for t in tensors]
    for name in states[0]:
        assert torch.equal(states[0][name], states[1][name]), name


def test_the_checkpoint_gives_rank_zeros_outputs(loop_run):
    results, tensors = _results(loop_run), _tensors(loop_run)
    model = fp.load(loop_run / "run", loop_worker.make_model).eval()
    with torch.no_grad():
        outputs = model(loop_worker.probe())
    torch.testing.assert_close(outputs, tensors[0]["full"]["outputs"])
    torch.testing.assert_close(outputs, tensors[1]["full"]["outputs"])
    state = RunDir(loop_run / "run").read_state()
    assert state["finished"] and state["final"] == "final"
    saved = fp.Plan.from_json((loop_run / "run" / "final" / "plan.json").read_text())
    assert fpd.plan_digest(saved) == results[0]["full"]["digest"]


def test_a_resumed_run_on_two_ranks_equals_the_uninterrupted_one(loop_run):
    results, tensors = _results(loop_run), _tensors(loop_run)
    for rank in range(WORLD):
        resumed, full = results[rank]["resume"], results[rank]["full"]
        assert resumed["digest"] == full["digest"]
        assert [c["start"] for c in resumed["calls"]] == [c["start"] for c in full["calls"][1:]]
        for name, value in tensors[rank]["full"]["state"].items():
            torch.testing.assert_close(tensors[rank]["resume"]["state"][name], value)
    rows = RunDir(loop_run / "resumed").read_rows()
    assert [row["iteration"] for row in rows] == [0, 1, 2, "final"]
    assert [row["removed_total"] for row in rows] == [
        row["removed_total"] for row in results[0]["full"]["rows"]
    ]


def test_taylor_all_reduce_refuses_ranks_that_observed_different_modules(loop_run):
    for result in _results(loop_run):
        message = result["modules"]["message"]
        assert result["modules"]["raised"], "a mismatch must raise on every rank"
        assert "rank(s) [1]" in message and "only rank 0 observed 'b'" in message


# ----- the CLI under torchrun --------------------------------------------------------------------
DATA = [  # as in tests/cli/test_cli.py: tiny synthetic cars, a U-Net of base width 4
    "--data-arg",
    "num_cars=6",
    "--data-arg",
    "views_per_car=2",
    "--image-size",
    "32",
    "--batch-size",
    "4",
]


def torchrun(workdir: Path, *argv: str, timeout: float) -> str:
    """``torchrun --nproc-per-node 2 -m filterprune ARGV`` in ``workdir``; returns its output."""
    src = str(Path(fp.__file__).resolve().parents[1])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    if Path("/sys/class/net/lo").exists():
        env["GLOO_SOCKET_IFNAME"] = "lo"
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc-per-node={WORLD}",
        "--master-addr=127.0.0.1",
        f"--master-port={_free_port()}",
        "--monitor-interval=0.2",
        "-m",
        "filterprune",
        *argv,
    ]
    try:
        done = subprocess.run(
            cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"torchrun {argv[0]} did not finish in {timeout:g}s:\n{exc.output}")
    output = done.stdout + done.stderr
    if done.returncode != 0 and teardown_abort(output):
        raise TeardownAbort(output[-6000:])
    if done.returncode != 0:
        pytest.fail(f"torchrun {argv[0]} exited with {done.returncode}:\n{output[-6000:]}")
    return output


class TeardownAbort(Exception):
    """A worker aborted by the runtime at exit, with no Python error (torchrun_abort.py)."""


@pytest.mark.slow
def test_cli_train_and_prune_under_torchrun(tmp_path, capsys):
    try:
        _train_and_prune(tmp_path / "first", capsys)
    except TeardownAbort:  # the runtime's abort at a worker's exit: once more, from the start
        _train_and_prune(tmp_path / "again", capsys)


def _train_and_prune(workdir: Path, capsys) -> None:
    from filterprune.cli import main

    workdir.mkdir()
    model = ["--task", "segment", "--model", "unet", "--model-arg", "base=4"]
    out = torchrun(workdir, "train", *model, *DATA, "--steps", "4", "--out", "base", timeout=90)
    assert out.count("saved to base") == 1  # rank 0 only
    assert sorted(p.name for p in (workdir / "base").iterdir()) == [
        "manifest.json",
        "metrics.json",
        "model.json",
        "plan.json",
        "weights.safetensors",
    ]

    out = torchrun(
        workdir,
        "prune",
        "--load",
        "base",
        *DATA,
        "--criterion",
        "taylor",
        "--ranking-batches",
        "2",
        "--amount",
        "0.25",
        "--finetune-steps",
        "2",
        "--max-iterations",
        "2",
        "--allow-collapse",  # a 4-step baseline: its Dice is noise
        "--run-dir",
        "run",
        timeout=120,
    )
    assert out.count("; final model from iteration 2 in run") == 1  # rank 0 prints
    assert sorted(p.name for p in workdir.iterdir()) == ["base", "run"]  # one run folder
    run = RunDir(workdir / "run")
    state = run.read_state()
    assert state["finished"] and state["stop_reason"] == "max_iterations"
    rows = run.read_rows()
    assert [r["iteration"] for r in rows] == [0, 1, 2]
    assert [r["ranking_batches"] for r in rows] == [0, 2, 2]
    assert rows[2]["removed_total"] > rows[1]["removed_total"] > 0
    assert not [p for p in (workdir / "run").iterdir() if is_leftover(p.name)]  # no temp

    # the checkpoint rank 0 wrote evaluates to the metrics it logged
    assert main(["eval", "--load", str(workdir / "run"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["metrics"] == pytest.approx(rows[-1]["metrics"], rel=1e-5)
    assert (result["params"], result["macs"]) == (rows[-1]["params"], rows[-1]["macs"])
