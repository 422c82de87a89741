"""Fixtures of the reliability tests: one thread, a trained tiny baseline, a CLI runner."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from rel_tiny import TRAIN

from filterprune.cli import main


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
