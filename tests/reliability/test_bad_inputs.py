"""One test per row of docs/errors.md: the message names the file/option, the value and the fix,
the CLI prints it as one line without a traceback, and nothing half-written is left behind.

Each command runs as its own process (forked from a warm server that runs ``filterprune``'s
entry point, see kill_server.py): its stderr is the process's whole stderr, so a warning that
torch prints while reading a bad file would show up before the error line and fail the test.
One case also runs through the installed ``filterprune`` script."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from bad_inputs import API_CASES, CLI_CASES, ApiCase, CliCase, Env
from rel_tiny import build

from filterprune import load
from filterprune.cli import main
from filterprune.loop import RunDir
from filterprune.store.files import is_leftover
from filterprune.store.lock import LOCK_NAME

DOCS = Path(__file__).resolve().parents[2] / "docs" / "errors.md"


@pytest.fixture
def env(baseline: Path, tmp_path: Path) -> Env:
    return Env(root=tmp_path, base=baseline)


def _files(folder: Path) -> dict[str, bytes]:
    """Every file's bytes, but the writer's lock (it names whoever held the folder last)."""
    found = folder.rglob("*")
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in found
        if p.is_file() and p.name != LOCK_NAME
    }


def assert_complete_run(run: Path) -> None:
    """Every file of the run folder parses, and the run loads."""
    assert RunDir(run).exists()
    for path in run.rglob("*.json"):
        json.loads(path.read_text())
    RunDir(run).read_rows()
    assert not [p for p in run.iterdir() if is_leftover(p.name)], "temporaries left behind"
    load(run, build)


def _weak_baseline_line(line: str) -> bool:
    return "near chance level" in line and "it has not learned" in line


@pytest.mark.parametrize("case", CLI_CASES, ids=lambda c: c.id)
def test_cli_bad_input(case: CliCase, env: Env, capsys, cli_server, tmp_path_factory):
    if case.setup is not None:
        case.setup(env)
        capsys.readouterr()
    kept = {name: (env.root / name).read_bytes() for name in case.untouched}
    base_before = _files(env.base)
    run_before = _files(env.run) if env.run.exists() else None
    stderr = tmp_path_factory.mktemp("stderr") / "stderr.txt"
    code = cli_server.run(case.argv(env), err=stderr)["status"]
    err = stderr.read_text()
    # the test baseline is trained for 2 steps on purpose (it is at chance level): the one line
    # prune says about such a baseline before spending time on it may come first
    lines = [line for line in err.strip().splitlines() if not _weak_baseline_line(line)]
    assert code == case.status, err
    assert len(lines) == 1, err  # nothing else before the error: no warning, no traceback
    assert lines[0].startswith("filterprune: error: ") and "Traceback" not in err
    for fragment in case.fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    # no partial output: an existing run folder is left as it was, a new one exists only if it
    # holds a complete run; the inputs are untouched
    if run_before is not None:
        assert _files(env.run) == run_before
    elif case.keeps_run:
        assert_complete_run(env.run)
    else:
        assert not env.run.exists(), sorted(p.name for p in env.run.iterdir())
    assert _files(env.base) == base_before
    for name, data in kept.items():
        assert (env.root / name).read_bytes() == data
    assert not (env.root / "pwned").exists(), "a pickle payload ran"


def test_installed_command_prints_only_the_error(env: Env, tmp_path):
    """The console script itself: a TorchScript archive makes torch warn while loading it."""
    script = Path(sys.executable).with_name("filterprune")
    assert script.is_file(), script
    argv = next(c for c in CLI_CASES if c.id == "load-torchscript").argv(env)
    here = Path(__file__).resolve().parent
    paths = [str(here.parents[1] / "src"), str(here), str(here.parent)]
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([str(script), *map(str, argv)], capture_output=True, text=True,
                          env=environ, timeout=300)  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("filterprune: error: weights file"), done.stderr
    assert done.stderr.count("\n") == 1, done.stderr


@pytest.mark.parametrize("case", API_CASES, ids=lambda c: c.id)
def test_api_bad_input(case: ApiCase, env: Env):
    with pytest.raises(case.error) as info:
        case.call(env)
    message = str(info.value)
    assert "\n" not in message.strip()
    for fragment in case.fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert not (env.root / "pwned").exists(), "a pickle payload ran"


def test_docs_table_lists_every_case_and_only_those():
    text = DOCS.read_text()
    documented = re.findall(r"test_(?:cli|api)_bad_input\[([\w-]+)\]", text)
    expected = [c.id for c in CLI_CASES] + [c.id for c in API_CASES]
    assert sorted(documented) == sorted(expected)


# ----- behaviours behind some rows, checked beyond the message ------------------------------------
def test_nan_loss_run_resumes_from_the_last_good_iteration(env: Env, capsys):
    assert main(env.prune("--lr", "1e30", "--finetune-steps", "3")) == 1
    state = RunDir(env.run).read_state()
    assert state["stop_reason"] == "non_finite" and state["current"] == "iter_000"
    # a lower learning rate continues the same run (lr is not part of the run's config)
    assert main(env.prune("--finetune-steps", "3", "--resume", "--max-iterations", "1")) == 0
    state = RunDir(env.run).read_state()
    assert state["stop_reason"] == "max_iterations" and state["current"] == "iter_001"


def test_oom_while_ranking_leaves_a_resumable_run(env: Env):
    oom = next(c for c in API_CASES if c.id == "api-oom-ranking")
    with pytest.raises(torch.OutOfMemoryError):
        oom.call(env)
    assert_complete_run(env.run)  # iteration 0, resumable with fewer batches
    assert RunDir(env.run).read_state()["last_completed"] == 0


def test_state_dict_saved_with_torch_save_loads(env: Env):
    model = build(width=8)
    path = env.root / "weights.pt"
    torch.save(model.state_dict(), path)
    loaded = load(path, build)
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(loaded(x), model.eval()(x))
    torch.save({"state_dict": model.state_dict(), "epoch": 3}, path)  # trainer-style wrapper
    assert torch.equal(load(path, build)(x), model(x))


def test_prune_fails_cleanly_inside_an_existing_empty_run_dir(env: Env, capsys):
    env.run.mkdir()
    argv = env.prune("--data", _bad_images(env.root))
    assert main(argv) == 1
    assert env.run.is_dir() and not any(env.run.iterdir())  # the folder the user made stays


def _bad_images(root: Path) -> Path:
    from PIL import Image

    data = root / "imgs"
    for cls in ("a", "b"):
        (data / cls).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (8, 8)).save(data / cls / f"{i}.png")
    for path in (data / "a").iterdir():
        path.write_bytes(b"broken")
    return data


def test_no_leftover_files_in_the_baseline(baseline_dir: Path):
    names = sorted(p.name for p in baseline_dir.iterdir())
    assert names == [
        "manifest.json",
        "metrics.json",
        "model.json",
        "plan.json",
        "weights.safetensors",
    ]
