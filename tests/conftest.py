"""Shared fixtures: seeded, two-thread tests; a tiny conv net (``tiny_models.FlattenNet``) for
measuring and reporting."""

import subprocess
from pathlib import Path

import pytest
import torch

from tiny_models import FlattenNet


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    torch.set_num_threads(2)
    yield


@pytest.fixture(scope="session", autouse=True)
def _latency_tables_in_a_temporary_folder(tmp_path_factory):
    """Latency lookup tables (widths="measured", cost="latency") are cached per machine in the
    user's cache folder; tests, including the CLI in subprocesses, keep theirs in a temporary one."""
    import os

    from filterprune.measure.latency_table import CACHE_ENV

    before = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("latency-tables"))
    yield
    if before is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = before


@pytest.fixture
def tiny() -> FlattenNet:
    torch.manual_seed(0)
    return FlattenNet()


@pytest.fixture
def tiny_input() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(1, 3, 8, 8)


def _untracked(root: Path) -> set[str] | None:
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=all"],
            cwd=root, capture_output=True, text=True, timeout=60, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None  # not a git checkout (an installed sdist): nothing to compare
    return {line[3:] for line in out.splitlines() if line.startswith("??")}


@pytest.fixture(scope="session", autouse=True)
def _no_files_left_in_the_checkout():
    """No test may write into the source tree (a run folder named after a fuzzed value did)."""
    root = Path(__file__).resolve().parent.parent
    before = _untracked(root)
    yield
    after = _untracked(root)
    if before is not None and after is not None:
        assert after <= before, f"tests left files in the checkout: {sorted(after - before)}"
