"""What filterprune may replace or delete, the modes it writes with, and errors while writing."""

from __future__ import annotations

import json
import os
import resource
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from rel_tiny import TRAIN, build

from filterprune import StorageError, load
from filterprune.cli import main
from filterprune.store.files import atomic_write_bytes
from filterprune.store.owned import record_files, remove_recorded


def test_train_overwrite_replaces_its_own_baseline(baseline: Path, capsys):
    before = (baseline / "weights.safetensors").read_bytes()
    assert main([*TRAIN, "--steps", "3", "--out", str(baseline), "--overwrite"]) == 0
    after = (baseline / "weights.safetensors").read_bytes()
    assert after != before  # three steps instead of two: new weights
    assert json.loads((baseline / "metrics.json").read_text())["steps"] == 3
    load(baseline, build)


def test_train_overwrite_refuses_a_baseline_with_a_user_file(baseline: Path, capsys):
    (baseline / "notes.txt").write_text("mine")
    assert main([*TRAIN, "--out", str(baseline), "--overwrite"]) == 1
    err = capsys.readouterr().err
    assert "is not a checkpoint folder filterprune wrote" in err and "left untouched" in err
    assert (baseline / "notes.txt").read_text() == "mine"


def _demo(run_dir: Path) -> list[str]:
    return ["demo", "--size", "smoke", "--run-dir", str(run_dir), "-q"]


def test_demo_refuses_a_folder_it_did_not_write(tmp_path, capsys):
    run = tmp_path / "mine"
    run.mkdir()
    (run / "thesis.tex").write_text("years of work")
    assert main(_demo(run)) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(run) in err and "--run-dir" in err, err
    assert (run / "thesis.tex").read_text() == "years of work"


def test_demo_refuses_a_previous_demo_folder_holding_a_user_file(tmp_path, capsys):
    run = tmp_path / "demo"
    (run / "iter_000").mkdir(parents=True)
    (run / "iter_000" / "weights.safetensors").write_bytes(b"x")
    record = {"task": "segment", "files": record_files(run)}
    (run / "demo.json").write_text(json.dumps(record))
    (run / "notes.md").write_text("my notes")  # what the old code deleted with the folder
    assert main(_demo(run)) == 1
    err = capsys.readouterr().err
    assert "'notes.md', which filterprune did not write" in err and "--run-dir" in err
    assert (run / "notes.md").read_text() == "my notes"
    assert (run / "iter_000" / "weights.safetensors").exists()


def test_demo_starts_over_in_its_own_folder(tmp_path):
    run = tmp_path / "demo"
    (run / "iter_000").mkdir(parents=True)
    (run / "iter_000" / "weights.safetensors").write_bytes(b"x")
    (run / "log.jsonl").write_text("{}\n")
    (run / "demo.json").write_text(json.dumps({"files": record_files(run, skip=("demo.json",))}))
    remove_recorded(run, "demo.json", option="--run-dir")
    assert run.is_dir() and not any(run.iterdir())  # the files went, the folder stays
    (run / "log.jsonl").write_text("{}\n")
    (run / "demo.json").write_text(json.dumps({"files": {}}))
    with pytest.raises(ValueError, match="'log.jsonl', which filterprune did not write"):
        remove_recorded(run, "demo.json", option="--run-dir")


def test_files_follow_the_umask(tmp_path, capsys):
    old = os.umask(0o022)
    try:
        out = tmp_path / "base"
        assert main([*TRAIN, "--out", str(out)]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    for path in out.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_write_errors_name_the_path_read_only(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(StorageError, match=r"cannot finish writing '.*ro/x.bin'.*choose a"):
            atomic_write_bytes(folder / "x.bin", b"data")
    finally:
        folder.chmod(0o755)


def test_write_errors_name_the_path(tmp_path):
    """A file-size limit (as a full disk would) fails the write with the path and the fix."""
    target = tmp_path / "big.bin"
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1000, hard))
    try:
        with pytest.raises(StorageError) as info:
            atomic_write_bytes(target, b"x" * 10_000)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    message = str(info.value)
    assert str(target) in message and "file-size limit" in message, message
    assert not target.exists() and not list(tmp_path.iterdir())  # no temporary left


def test_installed_command_names_the_file_it_cannot_write(tmp_path):
    """`filterprune train` under a file-size limit (as on a full disk): one line naming the path."""
    script = Path(sys.executable).with_name("filterprune")
    here = Path(__file__).resolve().parent
    paths = [str(here.parents[1] / "src"), str(here), str(here.parent)]
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "base"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (2000, resource.RLIM_INFINITY))

    done = subprocess.run(
        [str(script), *TRAIN, "--out", str(out)],
        capture_output=True,
        text=True,
        env=environ,
        preexec_fn=limit,
        timeout=300,
    )
    assert done.returncode == 1, done.stderr
    # the 2-step baseline is at chance level on purpose: train says so in one line first
    lines = [x for x in done.stderr.strip().splitlines() if "it has not learned" not in x]
    assert len(lines) == 1 and lines[0].startswith("filterprune: error: cannot finish writing")
    assert "weights.safetensors" in lines[0] and "file-size limit" in lines[0], lines[0]
    assert not out.exists() and not list(tmp_path.iterdir())  # nothing half-written is left


_ODD_NAMES = [
    os.fsdecode(b"ck\xff"),  # not valid UTF-8: safetensors cannot open it by name
    "with space",
    "ünïcødé",
    "-dash",
]


@pytest.mark.parametrize("name", _ODD_NAMES, ids=["non-utf8", "space", "unicode", "dash"])
def test_odd_checkpoint_paths_round_trip(name, tmp_path, capsys):
    """train writes, eval/prune/report/load read back a folder with an unusual name."""
    from rel_tiny import PRUNE, TRUSTED

    out = tmp_path / name
    assert main([*TRAIN, "--out", str(out)]) == 0
    assert main(["eval", "--load", str(out), *TRUSTED, "--image-size", "8", "--limit", "8"]) == 0
    run = tmp_path / (name + "-run")
    argv = [*PRUNE, "--load", str(out), "--run-dir", str(run), "--max-iterations", "1"]
    assert main(argv) == 0, capsys.readouterr().err
    assert main(["report", str(run), "--no-plots", "-q"]) == 0, capsys.readouterr().err
    load(out, build)
    load(run, build)
