"""Pruning under DDP: two gloo processes on CPU, loopback only, results passed back through files.

The workers (``ddp_worker.py``) run as subprocesses with timeouts on every join and collective, so
a broken collective fails the test instead of hanging it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F

import filterprune as fp
from filterprune import distributed as fpd

if not (dist.is_available() and dist.is_gloo_available()):
    pytest.skip("torch.distributed with the gloo backend is not available", allow_module_level=True)

import ddp_worker  # noqa: E402  (tests/distributed is on sys.path, like tests/graph/cases.py)

HERE = Path(__file__).resolve().parent

WORLD = 2
JOIN_TIMEOUT = 90.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(workdir: Path, *scenarios: str, timeout: float = JOIN_TIMEOUT) -> None:
    """Run ``scenarios`` on 2 worker processes; fail with their output if either fails or hangs."""
    src = str(Path(fp.__file__).resolve().parents[1])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
        "WORLD_SIZE": str(WORLD),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(_free_port()),
    }
    if Path("/sys/class/net/lo").exists():  # Linux: keep gloo on the loopback interface
        env["GLOO_SOCKET_IFNAME"] = "lo"
    procs, logs = [], []
    for r in range(WORLD):
        log = open(workdir / f"log_{r}.txt", "w")  # noqa: SIM115 (closed below)
        logs.append(log)
        cmd = [sys.executable, str(HERE / "ddp_worker.py"), str(workdir), *scenarios]
        rank_env = {**env, "RANK": str(r), "LOCAL_RANK": str(r)}
        procs.append(subprocess.Popen(cmd, env=rank_env, stdout=log, stderr=log))
    deadline = time.monotonic() + timeout
    try:
        for p in procs:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
            p.wait(timeout=10)
        pytest.fail(f"workers did not finish {scenarios} in {timeout:g}s:\n{_logs(workdir)}")
    finally:
        for log in logs:
            log.close()
    codes = [p.returncode for p in procs]
    if any(codes):
        pytest.fail(f"workers exited with {codes} running {scenarios}:\n{_logs(workdir)}")


def _logs(workdir: Path) -> str:
    return "\n".join(
        f"--- rank {r} ---\n{(workdir / f'log_{r}.txt').read_text()[-3000:]}" for r in range(WORLD)
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """One launch for the scenarios that leave the process group healthy."""
    workdir = tmp_path_factory.mktemp("ddp")
    ddp_worker.make_setup(workdir / "setup.pt")
    launch(workdir, "helpers", "plan", "ddp", "mismatch")
    return workdir


def _read(workdir: Path, stem: str) -> list[dict]:
    return [json.loads((workdir / f"{stem}_{r}.json").read_text()) for r in range(WORLD)]


def test_ranks_with_different_shards_get_the_same_taylor_plan(run):
    plans = [fp.Plan.from_json((run / f"plan_{r}.json").read_text()) for r in range(WORLD)]
    digests = [(run / f"digest_{r}.txt").read_text() for r in range(WORLD)]
    assert plans[0].num_removed > 0
    assert digests[0] == digests[1] == fpd.plan_digest(plans[0]) == fpd.plan_digest(plans[1])

    # The same plan as one process pruning on all the data; each shard alone would disagree.
    _, batches = ddp_worker.load(run)

    def local_plan(data: list) -> fp.Plan:
        model, _ = ddp_worker.load(run)
        return fp.prune(model, ddp_worker.example(batches), **ddp_worker.prune_kwargs(data))

    assert fpd.plan_digest(local_plan(batches)) == digests[0]
    shard_digests = {fpd.plan_digest(local_plan(ddp_worker.shard(batches, r))) for r in range(2)}
    assert len(shard_digests) == 2, "test data too easy: the shards alone already agree"


def test_all_reduced_taylor_scores_equal_single_process_scores_on_all_data(run):
    model, batches = ddp_worker.load(run)
    example = ddp_worker.example(batches)
    union = fp.rank(model, example, batches=batches, loss_fn=F.cross_entropy, normalize=False)
    per_rank = [torch.load(run / f"scores_{r}.pt", weights_only=True) for r in range(WORLD)]
    assert sum(x.shape[0] for x, _ in batches) == 16
    for scores in per_rank:
        assert scores.keys() == union.keys()
        for name in union:
            torch.testing.assert_close(scores[name], union[name], rtol=1e-5, atol=1e-7)

    # The shards hold 10 and 6 examples: a plain mean of the two shard means would be wrong.
    local = [
        fp.rank(
            model,
            example,
            batches=ddp_worker.shard(batches, r),
            loss_fn=F.cross_entropy,
            normalize=False,
        )
        for r in range(WORLD)
    ]
    name = next(iter(union))
    assert not torch.allclose((local[0][name] + local[1][name]) / 2, union[name], rtol=1e-4)


def test_check_same_plan_names_the_rank_and_group_that_differ(run):
    for result in _read(run, "mismatch"):
        assert result["raised"], "a differing plan must raise on every rank"
        assert result["ranks"] == [1]
        assert result["group"] == "b"
        assert "rank(s) [1]" in result["message"] and "'b'" in result["message"]
        assert result["seconds"] < 10
    equal = _read(run, "mismatch")
    assert equal[0]["same_digest"] == equal[1]["same_digest"]


def test_prune_distributed_returns_a_ddp_model_that_trains(run):
    results = _read(run, "ddp")
    plan_digest = (run / "digest_0.txt").read_text()
    for result in results:
        assert result["types"] == ["DistributedDataParallel", "DistributedDataParallel"]
        assert result["inner_is_model"]
        assert result["kwargs_kept"]  # the old wrapper's gradient_as_bucket_view=True
        assert result["params"][1] < result["params"][0]
        assert result["removed"][0] > 0 and result["removed"][1] > 0
        assert result["digest"] == plan_digest  # same model, same shards as fp.prune above
    assert results[0]["loss"] != results[1]["loss"]  # different data on each rank ...
    steps = [torch.load(run / f"ddp_{r}.pt", weights_only=True) for r in range(WORLD)]
    torch.testing.assert_close(steps[0]["grads"], steps[1]["grads"])  # ... averaged gradients
    torch.testing.assert_close(steps[0]["params"], steps[1]["params"])
    assert steps[0]["grads"].abs().sum() > 0


def test_check_same_plan_fails_fast_when_a_rank_never_calls_it(tmp_path):
    launch(tmp_path, "absent", timeout=60)
    result = json.loads((tmp_path / "absent_0.json").read_text())
    assert result["raised"]
    assert "every rank must call it" in result["message"]
    assert result["seconds"] < 10  # the 1 s timeout, not the 30 s process-group one


def test_helpers_agree_across_ranks_and_only_rank_zero_writes(run):
    results = _read(run, "helpers")
    assert [(r["rank"], r["local_rank"], r["world"], r["main"]) for r in results] == [
        (0, 0, 2, True),
        (1, 1, 2, False),
    ]
    for result in results:
        assert result["decision"] == {"accepted": True, "from": 0}
        assert result["written"] == ["written_by_0.txt"]
