"""Output conventions, seen from the user's side (the ``filterprune`` command in a subprocess).

Results on stdout, log lines on stderr; progress bars only on a terminal, so a log file gets clean
lines and no carriage returns; ``--quiet`` and ``--verbose`` mean the same in every command.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from test_cli import DATA

from filterprune.cli.main import COMMANDS, main

TRAIN = ["train", "--task", "segment", "--model", "unet", "--model-arg", "base=4", *DATA]
TRAIN += ["--steps", "6"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("FILTERPRUNE_PROGRESS", None)
    return env


def _run_to_files(args: list[str], tmp_path: Path, name: str) -> tuple[int, str, str]:
    """Run the CLI with stdout and stderr going to files (as in CI or `cmd > log 2>&1`)."""
    out, err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
    with out.open("w") as fo, err.open("w") as fe:
        code = subprocess.call(
            [sys.executable, "-m", "filterprune", *args],
            stdout=fo,
            stderr=fe,
            stdin=subprocess.DEVNULL,
            env=_env(),
            cwd=tmp_path,
            timeout=600,
        )
    return code, out.read_text(), err.read_text()


@pytest.mark.parametrize("command", [c.NAME for c in COMMANDS])
def test_every_command_takes_quiet_and_verbose_alike(command, capsys):
    assert main([command, "--help"]) == 0
    help_text = capsys.readouterr().out
    assert "--quiet, -q" in help_text and "--verbose, -v" in help_text
    assert "only on a terminal" in help_text
    assert "%%" not in help_text  # a description is printed as written, not %-formatted
    assert main([command, "-q", "-v"]) == 2  # exclusive, before any other check of the command
    assert "not allowed with argument" in capsys.readouterr().err


@pytest.mark.slow
def test_logs_to_files_have_no_carriage_returns_and_follow_the_level(tmp_path):
    code, out, err = _run_to_files([*TRAIN, "--out", "base"], tmp_path, "train")
    assert code == 0, err
    assert "\r" not in out and "\r" not in err
    assert "saved to base" in out  # the result, on stdout
    assert "training unet" in err  # an informational line, on stderr
    prune = ["prune", "--load", "base", "--amount", "0.25", "--finetune-steps", "2"]
    prune += ["--max-iterations", "2", "--run-dir", "run", "--criterion", "l1"]
    code, out, err = _run_to_files([*prune, "-v"], tmp_path, "prune")
    assert code == 0, err
    assert "\r" not in out and "\r" not in err
    iterations = [line for line in err.splitlines() if re.search(r"iteration \d+: removed", line)]
    assert len(iterations) == 2, err  # one clean line per pruning iteration
    assert "DEBUG filterprune.api: analyzed UNet" in err  # --verbose adds debug lines
    code, out, err = _run_to_files(["eval", "--load", "run", "-q"], tmp_path, "eval")
    assert code == 0 and err == "" and out.strip()  # --quiet: the result only


@pytest.mark.slow
def test_progress_bar_is_drawn_on_a_terminal(tmp_path):
    pytest.importorskip("tqdm")
    master, slave = pty.openpty()
    # a terminal of 24 rows and 100 columns (a fresh pseudo-terminal has 0 columns)
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    with (tmp_path / "out").open("w") as fo:
        child = subprocess.Popen(
            [sys.executable, "-m", "filterprune", *TRAIN, "--out", "base"],
            stdout=fo,
            stderr=slave,
            stdin=subprocess.DEVNULL,
            env=_env(),
            cwd=tmp_path,
        )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # the terminal closed: the child exited
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert child.wait(timeout=600) == 0
    screen = b"".join(chunks).decode(errors="replace")
    # a bar redrawn in place; the last state is cleared on exit, so any count of the 6 steps will do
    assert "\rfinetune:" in screen and re.search(r"\| *[0-6]/6 \[", screen), screen


def test_prune_help_states_the_default_finetuning(capsys):
    """The description says what a bare 'prune' finetunes: the rates and the final pass."""
    assert main(["prune", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "100 finetuning steps per iteration at a tenth of the baseline's rate" in text
    assert "one pass over the training data from the baseline's rate" in text
