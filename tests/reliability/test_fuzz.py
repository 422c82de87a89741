"""Fuzzing: the channel-list and spec readers and the command line never fail unexpectedly.

Every input either parses to the right value or fails with a ``ValueError``/``FileNotFoundError``
that names the file; every argument list ends with exit status 0, 1 or 2 and, on failure, one
``filterprune: error:`` line and no traceback. (The plan parser is fuzzed in tests/graph.)
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from rel_tiny import MODEL

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
class _Stop(Exception):
    """Raised instead of loading data: the arguments were accepted up to the real work."""


@pytest.fixture
def no_work(monkeypatch):
    """Stop every command where it would load data or train, so fuzzing stays fast."""

    def stop(*args, **kwargs):
        raise _Stop("arguments accepted")

    for module in ("train", "prune", "eval"):
        monkeypatch.setattr(f"filterprune.cli.{module}.load_data", stop)
    monkeypatch.setattr("filterprune.cli.demo.run_demo", stop)


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
REQUIRED = {  # what gets a command past argparse, so the fuzzing reaches its own checks
    "train": ["--model", MODEL, "--task", "classify"],
    "prune": ["--load", "{base}"],
    "eval": ["--load", "{base}"],
    "inspect": ["--model", MODEL],
    "report": ["{base}"],
    "demo": [],
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
    }


@FUZZ
@given(data=st.data())
def test_cli_never_shows_a_traceback(no_work, paths, capsys, data):
    assert_clean_exit(data.draw(argvs(paths)), capsys)


def assert_clean_exit(argv: list[str], capsys) -> None:
    torch.set_num_threads(1)
    code = main(argv)
    out, err = capsys.readouterr()
    assert code in (0, 1, 2), (argv, code, err)
    assert "Traceback" not in err and "Traceback" not in out, (argv, err)
    if code == 2 and not err:  # no subcommand: the help, as for `filterprune` alone
        assert out.startswith("usage: filterprune"), (argv, out)
    elif code != 0:
        errors = [line for line in err.splitlines() if line.startswith("filterprune: error: ")]
        assert len(errors) == 1, (argv, err)
        assert err.rstrip().endswith(errors[0]), (argv, err)  # the error is the last line


def test_fuzz_vocabulary_reaches_the_work(no_work, paths, capsys):
    """The fuzzer's vocabulary can pass the parser: a valid command stops at the data stub."""
    assert main(["prune", "--load", paths["base"], "--amount", "0.5", "-q"]) == 1
    assert "_Stop: arguments accepted" in capsys.readouterr().err
    assert main(["inspect", "--model", MODEL, "--input-shape", "1,3,8,8"]) == 0
    capsys.readouterr()
    assert not Path(paths["out"]).exists()
