"""A frozen group's source line points at the model's code, not at the command's entry script."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(sys.executable).with_name("filterprune")
UNET = Path(importlib.util.find_spec("filterprune.models.unet").origin)


def test_inspect_of_a_built_in_model_names_the_line_in_the_model():
    argv = [str(SCRIPT), "inspect", "--model", "unet", "--model-arg", "base=4",
            "--input-shape", "1,3,32,32"]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    places = re.findall(r" at (\S+):(\d+)\)?:", done.stdout)
    assert places, done.stdout
    for path, line in places:
        assert Path(path) == UNET, (path, done.stdout)
        source = Path(path).read_text().splitlines()[int(line) - 1]
        assert "self.outc(" in source, source  # the line that makes the model's output
