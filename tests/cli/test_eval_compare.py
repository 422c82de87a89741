"""``filterprune eval --compare``: two models of different architectures, batch-size flags in
either form, and the advice on a timing flagged busy."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from filterprune import measure
from filterprune.cli import main
from filterprune.cli.main import build_parser

FILTERPRUNE = str(Path(sys.executable).parent / "filterprune")
SMALL = ["--limit", "64", "--batch-size", "16"]
TIMING = ["--latency", "--threads", "1", "--rounds", "2", "--repeats", "2"]


def installed(*argv: object, check: bool = True) -> subprocess.CompletedProcess:
    """The installed command, as a user runs it."""
    return subprocess.run(
        [FILTERPRUNE, *map(str, argv)], capture_output=True, text=True, check=check
    )


def one_line_error(done: subprocess.CompletedProcess, *fragments: str) -> str:
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("filterprune: error: ") and "Traceback" not in done.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """Two tiny classify baselines of different architectures (each with its own model.json)
    and a segment one."""
    root = tmp_path_factory.mktemp("compare")
    # fmt: off
    models = {
        "vgg": ["--task", "classify", "--model", "vgg16_bn", "--model-arg", "width=0.0625"],
        "rn": ["--task", "classify", "--model", "resnet18", "--model-arg", "width=0.0625",
               "--model-arg", "stem=cifar"],
        "seg": ["--task", "segment", "--model", "unet", "--model-arg", "base=4",
                "--data-arg", "num_cars=6", "--data-arg", "views_per_car=2",
                "--image-size", "32"],
    }
    # fmt: on
    for name, flags in models.items():
        installed("train", *flags, "--steps", "1", "--batch-size", "4", "--out", root / name, "-q")
    return {name: root / name for name in models}


def alone(folder: Path) -> dict:
    return json.loads(installed("eval", "--load", folder, *SMALL, "--json", "-q").stdout)


def test_two_architectures_each_built_from_its_own_model_json(folders):
    vgg, rn = folders["vgg"], folders["rn"]
    done = installed("eval", "--compare", vgg, "--load", rn, *SMALL, *TIMING,
                     "--latency-batch-sizes", "1,2", "--json", "-q")  # fmt: skip
    result = json.loads(done.stdout)
    for side, folder in (("original", vgg), ("model", rn)):
        own = alone(folder)
        assert (result[side]["params"], result[side]["macs"]) == (own["params"], own["macs"])
        assert result[side]["metrics"] == pytest.approx(own["metrics"], rel=1e-6)
    assert result["original"]["params"] != result["model"]["params"]
    assert [r["batch_size"] for r in result["latency"]] == [1, 2]
    # the table names each side with its own figures
    text = installed("eval", "--compare", vgg, "--load", rn, *SMALL, "-q").stdout
    assert f"A/B comparison: {rn} against {vgg}" in text
    assert "does not match" not in text


def test_a_side_without_model_json_is_built_like_the_other(folders, tmp_path):
    # a bare weights file of the vgg baseline, compared with the vgg baseline in either role
    weights = tmp_path / "vgg.safetensors"
    shutil.copy(folders["vgg"] / "weights.safetensors", weights)
    for compare, load in ((folders["vgg"], weights), (weights, folders["vgg"])):
        done = installed("eval", "--compare", compare, "--load", load, *SMALL, "--json", "-q")
        result = json.loads(done.stdout)
        assert result["original"]["params"] == result["model"]["params"] > 0


def test_different_tasks_fail_with_one_line_naming_both(folders):
    done = installed("eval", "--compare", folders["vgg"], "--load", folders["seg"], check=False)
    one_line_error(
        done, f"--compare {folders['vgg']}", f"--load {folders['seg']}",
        "task 'classify' against 'segment'", "field 'task'",
    )  # fmt: skip


def test_different_input_channels_fail_with_one_line_naming_both(folders, tmp_path):
    gray = tmp_path / "gray"
    shutil.copytree(folders["rn"], gray)
    info = json.loads((gray / "model.json").read_text())
    info["input_shape"] = [1, 1, 32, 32]
    (gray / "model.json").write_text(json.dumps(info))
    done = installed("eval", "--compare", folders["vgg"], "--load", gray, check=False)
    one_line_error(
        done, str(folders["vgg"]), str(gray), "3-channel inputs against 1-channel inputs",
        "'input_shape'",
    )  # fmt: skip


def test_model_flag_against_a_model_json_naming_another_model(folders):
    done = installed("eval", "--compare", folders["vgg"], "--load", folders["rn"],
                     "--model", "resnet18", check=False)  # fmt: skip
    one_line_error(
        done, "--model resnet18", str(folders["vgg"] / "model.json"), "'vgg16_bn'",
        "leave --model out",
    )  # fmt: skip


# ----- batch sizes -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("flags", "sizes"),
    [
        (["--batch-sizes", "1", "16"], [1, 16]),
        (["--batch-sizes", "1,16"], [1, 16]),
        (["--batch-sizes", "1,16", "32"], [1, 16, 32]),
        (["--latency-batch-sizes", "1,8"], [1, 8]),
        (["--latency-batch-sizes", "4"], [4]),
        ([], [1]),
    ],
)
def test_batch_sizes_take_either_form(flags, sizes, tmp_path):
    args = build_parser().parse_args(["eval", "--load", str(tmp_path), *flags])
    assert args.batch_sizes == sizes


@pytest.mark.parametrize("value", ["1,x", "0", ",", "-1"])
@pytest.mark.parametrize("flag", ["--batch-sizes", "--latency-batch-sizes"])
def test_bad_batch_sizes_are_one_line_errors(flag, value, tmp_path):
    done = installed("eval", "--load", tmp_path, flag, value, check=False)
    assert done.returncode == 2
    one_line_error(done, "--batch-sizes/--latency-batch-sizes", "1,16", repr(value))


@pytest.mark.parametrize(
    ("flags", "sizes"),
    [(["1,16"], [1, 16]), (["1", "16"], [1, 16]), (["1,8", "32"], [1, 8, 32]), (["4"], [4])],
)
def test_prune_takes_the_same_batch_size_forms(flags, sizes, tmp_path):
    # one parser for every batch-size flag: what eval takes, prune takes
    args = build_parser().parse_args(["prune", "--load", str(tmp_path),
                                      "--latency-batch-sizes", *flags])  # fmt: skip
    assert args.latency_batch_sizes == sizes


@pytest.mark.parametrize("value", ["1,x", "0"])
def test_prune_refuses_bad_batch_sizes_in_one_line(value, tmp_path):
    done = installed("prune", "--load", tmp_path, "--latency-batch-sizes", value, check=False)
    assert done.returncode == 2
    one_line_error(done, "--latency-batch-sizes", "1,16", repr(value))


def test_help_names_the_alias():
    text = installed("eval", "--help").stdout
    assert "--latency-batch-sizes" in text and "1,16" in text


# ----- a timing flagged busy -------------------------------------------------------------------
def test_busy_advice_reruns_this_command(folders, capsys, monkeypatch):
    real = measure.compare_latency

    def busy(*args, **kwargs):  # every timing as on a machine other processes held
        flags = ("preempted (on a core 40 % of the time)",)
        return [dataclasses.replace(c, flags=flags) for c in real(*args, **kwargs)]

    monkeypatch.setattr(measure, "compare_latency", busy)
    vgg, rn = folders["vgg"], folders["rn"]
    code = main(["eval", "--compare", str(vgg), "--load", str(rn), *SMALL, *TIMING,
                 "--batch-sizes", "1", "-q"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "preempted" in out
    assert "RUN" not in out and "ORIGINAL" not in out  # no placeholder command
    again = (  # the flags given (at their defaults: left out), with the real paths
        f"(filterprune eval --load {rn} --limit 64 --compare {vgg} --latency --rounds 2 "
        "--repeats 2)"
    )
    busy_lines = [n for n in out.splitlines() if "machine" in n and "busy" in n]
    assert len(busy_lines) == 2, out  # the table's note and the fastest-block note
    for line in busy_lines:
        assert "when the machine is idle" in line and "(--rounds 4)" in line, line
        assert again in line, line
