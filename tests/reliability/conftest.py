"""Fixtures of the reliability tests: one thread, a trained tiny baseline, a CLI runner."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from rel_tiny import TRAIN

from filterprune.cli import main

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"


class KillServer:
    """Client of kill_server.py: forks ``filterprune`` processes from a warm interpreter."""

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

    def run(
        self,
        argv: list,
        kill_after: float | None = None,
        env: dict | None = None,
        err: Path | None = None,
    ) -> dict:
        """Run ``filterprune ARGV`` in a forked child (stderr to ``err`` if given)."""
        request = {
            "argv": [str(a) for a in argv],
            "kill_after": kill_after,
            "log": str(self.log),
            "env": env or {},
            "err": str(err) if err is not None else None,
        }
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="session")
def cli_server(tmp_path_factory):
    """Runs ``filterprune`` commands as forked processes of a warm server (one per session)."""
    srv = KillServer(tmp_path_factory.mktemp("cli") / "children.log")
    yield srv
    srv.close()


@pytest.fixture(autouse=True)
def _one_thread():
    # tiny tensors: one thread is faster, and exact across processes
    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="session")
def baseline_dir(tmp_path_factory) -> Path:
    """A trained baseline folder (weights, plan, model.json), shared read-only by the tests."""
    out = tmp_path_factory.mktemp("rel") / "base"
    torch.set_num_threads(1)
    assert main([*TRAIN, "--out", str(out)]) == 0
    return out


@pytest.fixture
def baseline(baseline_dir, tmp_path) -> Path:
    """A private copy of the baseline folder."""
    return Path(shutil.copytree(baseline_dir, tmp_path / "base"))
