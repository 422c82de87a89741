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
