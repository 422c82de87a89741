"""Fuzzing: the file readers and the command line never fail unexpectedly.

Every input either parses to the right value or fails with a ``ValueError``/``FileNotFoundError``
that names the file; every argument list ends with exit status 0, 1 or 2 and, on failure, one
``filterprune: error:`` line and no traceback. Nothing is stubbed: the commands load real data
and real checkpoints (tiny ones), and any exception that is not filterprune's own (an internal
``TypeError``, ``KeyError``, ``AttributeError``, ...) fails the test. Every file of a run folder
is damaged in turn (random JSON, a field changed or removed, random bytes) and read back by
``eval`` and ``prune --resume``. (The plan parser is fuzzed in tests/graph.)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from rel_tiny import DATA, MODEL, PRUNE, TRUSTED

from filterprune import Plan
from filterprune.cli import main
from filterprune.loop import read_channel_txt, read_spec, write_channel_txt

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

# ----- channel lists ---------------------------------------------------------------------------
_line = st.one_of(
    st.integers(-5, 5000).map(str),
    st.text(alphabet=" \t+-0123456789.#eE_xa", max_size=8),
    st.text(max_size=6),
    st.sampled_from(["", "# comment", "12 # twelve", "٣", "1_000", " 7 ", "nan", "1e3"]),
)


def _expected(text: str) -> list[int] | None:
    """What a correct reader returns for ``text`` (None: it must reject it)."""
    out = []
    for raw in text.splitlines():
        body = raw.split("#", 1)[0].strip()
        if not body:
            continue
        try:
            value = int(body)
        except ValueError:
            return None
        if value < 1:
            return None
        out.append(value)
    return out


@FUZZ
@given(lines=st.lists(_line, max_size=12), expected=st.one_of(st.none(), st.integers(0, 12)))
@example(lines=["8", "0"], expected=None)
@example(lines=["8.5"], expected=None)
def test_channel_list_reader(tmp_path, lines, expected):
    path = tmp_path / "channels.txt"
    text = "\n".join(lines)
    path.write_text(text, encoding="utf-8")
    want = _expected(text)
    if want is not None and (expected is None or len(want) == expected):
        assert read_channel_txt(path, expected=expected) == want
        return
    with pytest.raises(ValueError) as info:
        read_channel_txt(path, expected=expected)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    if want is None:  # a bad line: the message points at it
        assert re.search(rf"{re.escape(str(path))}:\d+: ", message), message


@FUZZ
@given(data=st.binary(max_size=64))
def test_channel_list_reader_on_any_bytes(tmp_path, data):
    path = tmp_path / "channels.txt"
    path.write_bytes(data)
    try:
        channels = read_channel_txt(path)
    except ValueError as exc:
        assert str(path) in str(exc)
    else:
        assert all(isinstance(c, int) and c >= 1 for c in channels)


@FUZZ
@given(channels=st.lists(st.integers(1, 10**6), max_size=30))
def test_channel_list_round_trip(tmp_path, channels):
    path = write_channel_txt(tmp_path / "c.txt", channels)
    assert read_channel_txt(path, expected=len(channels)) == channels


# ----- width specs -----------------------------------------------------------------------------
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 300)
    | st.floats(allow_nan=False)
    | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
_spec = st.one_of(
    _json,
    st.dictionaries(st.sampled_from(["conv1", "conv2", "inc.0", ""]), st.integers(-2, 40)),
    st.fixed_dictionaries({"widths": st.dictionaries(st.text(max_size=4), _json, max_size=3)}),
    st.fixed_dictionaries(
        {"format": st.sampled_from([1, 2, "1"]), "removed_outputs": _json}, optional={"x": _json}
    ),
)


@FUZZ
@given(spec=_spec)
@example(spec={"conv1": 4, "conv2": True})
@example(spec={"format": 1, "removed_outputs": {"conv1": [0, 0]}})
def test_spec_reader(tmp_path, spec):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    try:
        result = read_spec(path)
    except ValueError as exc:
        assert str(path) in str(exc), str(exc)
        return
    if isinstance(result, Plan):
        assert Plan.from_json(result.to_json()) == result
    else:
        assert all(type(v) is int for v in result.values())
        widths = spec.get("widths") if isinstance(spec, dict) else None
        assert result == (widths if isinstance(widths, dict) else spec)


@FUZZ
@given(data=st.binary(max_size=64))
def test_spec_reader_on_any_bytes(tmp_path, data):
    path = tmp_path / "spec.json"
    path.write_bytes(data)
    try:
        read_spec(path)
    except ValueError as exc:
        assert str(path) in str(exc)


# ----- the command line ------------------------------------------------------------------------
OPTIONS = [
    "--load", "--model", "--model-arg", "--task", "--data", "--image-size", "--val-fraction",
    "--data-arg", "--batch-size", "--limit", "--config", "--criterion", "--criterion-arg",
    "--amount", "--schedule", "--scope", "--ranking-batches", "--flops-reg", "--round-to",
    "--min-channels", "--include", "--exclude", "--layer-type", "--layers", "--finetune-steps",
    "--finetune-epochs", "--final-finetune", "--max-iterations", "--max-pruned-fraction",
    "--target", "--metric", "--metric-floor", "--max-metric-drop", "--run-dir", "--resume",
    "--latency", "--seed", "--device", "--lr", "--optimizer", "--steps", "--epochs", "--out",
    "--input-shape", "--list-models", "--json", "--channel-txt", "--spec", "--quiet", "-q",
    "--no-normalize", "--momentum", "--weight-decay", "--version",
]  # fmt: skip
VALUES = [
    "0", "1", "-1", "0.5", "1.5", "10%", "abc", "", "nan", "inf", "1e309", "classify", "segment",
    "builtin", "l1", "taylor", "global", "per_group", "macs=-50%", "macs<=1", "params<=1.5M",
    "width=4", "width", "=3", "k=[1,2]", "1,3,8,8", "1,1,8,8", "3,8", "x", "cpu", "cuda:7",
    "sgd", MODEL, "rel_tiny:build_other", "nope", "a:b", "nosuchmod:f", "0.1,0.2", "1,0", "-0.2",
]  # fmt: skip
COMMANDS = ["train", "prune", "eval", "inspect", "report", "demo", "shrink", ""]


SKIPPED = ("-h", "--help", "--debug")  # --debug shows tracebacks on purpose (tests/cli)


def _options_by_command() -> dict[str, list[str]]:
    from filterprune.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {
        name: [o for a in p._actions for o in a.option_strings if o not in SKIPPED]
        for name, p in sub.choices.items()
    }


COMMAND_OPTIONS = _options_by_command()
# what gets a command past argparse, so the fuzzing reaches its own checks; tiny real work
TINY = [*TRUSTED, *DATA]
REQUIRED = {
    "train": [*TINY, "--task", "classify", "--steps", "1", "--out", "{out}"],
    "prune": ["--load", "{base}", *TINY, "--max-iterations", "1", "--run-dir", "{run}"],
    "eval": ["--load", "{base}", *TINY],
    "inspect": [*TRUSTED],
    "report": ["{base}"],
    "demo": ["--size", "smoke", "--run-dir", "{run}", "--cache-dir", "{out}"],
}


@st.composite
def argvs(draw, paths: dict[str, str]) -> list[str]:
    """Mostly a subcommand with its required arguments and some of its own options with good or
    bad values; sometimes options, values and odd text in any order."""
    values = st.sampled_from(VALUES + list(paths.values()))
    if draw(st.integers(0, 3)):
        command = draw(st.sampled_from(sorted(REQUIRED)))
        argv = [command] + [a.format(**paths) for a in REQUIRED[command]]
        for _ in range(draw(st.integers(0, 5))):
            argv.append(draw(st.sampled_from(COMMAND_OPTIONS[command])))
            if draw(st.integers(0, 4)):
                argv.append(draw(values))
        return argv
    argv = [draw(st.sampled_from(COMMANDS))] if draw(st.integers(0, 9)) else []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.integers(0, 9))
        if kind < 5:
            argv.append(draw(st.sampled_from(OPTIONS)))
            argv.append(draw(values))
        elif kind < 7:
            argv.append(draw(st.sampled_from(OPTIONS)))
        elif kind < 9:
            argv.append(draw(values))
        else:
            argv.append(draw(st.text(alphabet=st.characters(codec="utf-8"), max_size=6)))
    return argv


@pytest.fixture
def paths(baseline_dir, tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("fuzz")
    (root / "bad.json").write_text("{")
    (root / "ch.txt").write_text("8\n16\n")
    return {
        "base": str(baseline_dir),
        "weights": str(baseline_dir / "weights.safetensors"),
        "missing": str(root / "missing"),
        "bad": str(root / "bad.json"),
        "ch": str(root / "ch.txt"),
        "out": str(root / "out"),
        "run": str(root / "run"),
    }


CLI_FUZZ = settings(FUZZ, max_examples=60)  # each example does real (tiny) work


@CLI_FUZZ
@given(data=st.data())
def test_cli_never_shows_a_traceback(paths, capsys, data):
    # a drawn value may name a folder (--run-dir macs<=1): relative paths land in the temp root
    previous = os.getcwd()
    os.chdir(Path(paths["run"]).parent)
    try:
        assert_clean_exit(data.draw(argvs(paths)), capsys)
    finally:
        os.chdir(previous)


def assert_clean_exit(argv: list[str], capsys) -> None:
    torch.set_num_threads(1)
    code = main(argv)
    out, err = capsys.readouterr()
    assert code in (0, 1, 2), (argv, code, err)
    assert "Traceback" not in err and "Traceback" not in out, (argv, err)
    assert "internal error" not in err, (argv, err)  # an exception that is not filterprune's
    if code == 2 and not err:  # no subcommand: the help, as for `filterprune` alone
        assert out.startswith("usage: filterprune"), (argv, out)
    elif code != 0:
        errors = [line for line in err.splitlines() if line.startswith("filterprune: error: ")]
        assert len(errors) == 1, (argv, err)
        assert err.rstrip().endswith(errors[0]), (argv, err)  # the error is the last line


def test_fuzz_vocabulary_reaches_the_work(paths, capsys):
    """The fuzzer's vocabulary can pass the parser and do the real work."""
    argv = ["eval", *[a.format(**paths) for a in REQUIRED["eval"]], "--json"]
    assert main(argv) == 0
    assert "accuracy" in json.loads(capsys.readouterr().out)["metrics"]
    assert main(["inspect", *TRUSTED, "--input-shape", "1,3,8,8"]) == 0
    capsys.readouterr()


# ----- every file of a run folder, damaged --------------------------------------------------------
RUN_FILES = [
    "state.json",
    "config.json",
    "log.jsonl",
    "model.json",
    "iter_000/manifest.json",
    "iter_001/plan.json",
    "iter_001/step_plan.json",
    "iter_001/metrics.json",
    "iter_001/scores.json",
    "iter_001/weights.safetensors",
]


@pytest.fixture(scope="module")
def finished_run(baseline_dir, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("fuzzrun") / "run"
    torch.set_num_threads(1)
    argv = [*PRUNE, "--load", str(baseline_dir), "--run-dir", str(run), "--max-iterations", "1"]
    assert main(argv) == 0
    return run


def _damage(original: bytes, lines: bool, data: st.DataObject) -> bytes:
    """Random JSON, random bytes, the file cut short, or one field changed or removed (in one
    line of a ``.jsonl`` file)."""
    kind = data.draw(st.sampled_from(["json", "bytes", "cut", "field", "drop"]))
    if kind == "json":
        return json.dumps(data.draw(_json)).encode()
    if kind == "bytes":
        return data.draw(st.binary(max_size=40))
    if kind == "cut":
        return original[: data.draw(st.integers(0, max(0, len(original) - 1)))]
    texts = original.decode().splitlines() if lines else [original.decode()]
    index = data.draw(st.integers(0, len(texts) - 1))
    value = json.loads(texts[index])
    if not isinstance(value, dict) or not value:
        return json.dumps(data.draw(_json)).encode()
    key = data.draw(st.sampled_from(sorted(value)))
    if kind == "drop":
        del value[key]
    else:
        value[key] = data.draw(_json)
    texts[index] = json.dumps(value)
    return "\n".join(texts).encode()


def _read_back(run: Path, capsys) -> None:
    base = [*TRUSTED, *DATA, "-q"]
    assert_clean_exit(["eval", "--load", str(run), "--task", "classify", *base], capsys)
    resume = [*PRUNE, "--load", str(run / "iter_000"), "--run-dir", str(run), "--resume"]
    assert_clean_exit([*resume, "--max-iterations", "1"], capsys)


@settings(FUZZ, max_examples=40)
@given(name=st.sampled_from(RUN_FILES), data=st.data())
def test_damaged_run_folder_fails_in_one_line(finished_run, tmp_path_factory, capsys, name, data):
    run = Path(shutil.copytree(finished_run, tmp_path_factory.mktemp("damaged") / "run"))
    path = run / name
    binary = name.endswith(".safetensors")
    if binary:  # weights: random bytes (also none at all)
        path.write_bytes(data.draw(st.binary(max_size=60)))
    else:
        path.write_bytes(_damage(path.read_bytes(), name.endswith(".jsonl"), data))
    _read_back(run, capsys)


def test_checkpoint_name_that_is_not_a_number(finished_run, tmp_path, capsys):
    run = Path(shutil.copytree(finished_run, tmp_path / "run"))
    state = json.loads((run / "state.json").read_text())
    (run / "state.json").write_text(json.dumps({**state, "current": "iter_x1"}))
    assert main(["eval", "--load", str(run), *TRUSTED, *DATA, "--task", "classify"]) == 1
    err = capsys.readouterr().err
    assert "state.json" in err and "'current'" in err and "iter_NNN" in err, err
