"""The README's "With Lightning" example runs as written and prunes what it says."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("lightning")

README = Path(__file__).resolve().parents[2] / "README.md"


def _example(heading: str) -> str:
    section = README.read_text().split(f"\n## {heading}\n", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None, f"no python example under '## {heading}'"
    return match.group(1)


@pytest.mark.slow
def test_readme_lightning_example_runs(tmp_path):
    (tmp_path / "example.py").write_text(_example("With Lightning"))
    done = subprocess.run(
        [sys.executable, "example.py"], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    history = ast.literal_eval(lines[0])
    assert len(history) >= 1 and all(step["removed"] > 0 for step in history)
    macs = [step["macs"] for step in history]
    assert macs == sorted(macs, reverse=True) and len(set(macs)) == len(macs)
    # the checkpoint loaded into a fresh module has the pruned size
    last = history[-1]
    assert lines[-1] == f"Counts(params={last['params']}, macs={last['macs']})"
    assert list((tmp_path / "checkpoints").glob("*.ckpt"))
