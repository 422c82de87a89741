"""Pieces shared by the subcommands: flags, value parsers, building models, logging, output."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..recipes.models import MODEL_JSON, read_model_json


class CLIError(Exception):
    """A user error: printed as one line ``filterprune: error: ...`` with a non-zero exit."""


class UsageError(CLIError):
    """A command-line usage error (exit status 2)."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors become :class:`UsageError` (one line, no usage dump)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        command = self.prog.split(" ", 1)[1] if " " in self.prog else ""
        where = f"{command}: " if command else ""
        raise UsageError(f"{where}{message} (see '{self.prog} --help')")


def add_common(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("output")
    group.add_argument("--quiet", "-q", action="store_true", help="no progress bars or log lines")
    group.add_argument("--debug", action="store_true", help="show the traceback of errors")


# ----- value parsers (argparse ``type=``) ------------------------------------------------------
def parse_value(text: str) -> Any:
    """``"3"`` -> 3, ``"0.5"`` -> 0.5, ``"true"`` -> True, ``"[1,2]"`` -> [1, 2], else the text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def key_value(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. width=0.25), got {text!r}")
    return key.strip(), parse_value(value.strip())


def amount(text: str) -> float | int:
    """``"0.1"`` or ``"10%"`` -> 0.1 (a fraction); ``"8"`` -> 8 (a channel count)."""
    text = text.strip()
    try:
        if text.endswith("%"):
            return float(text[:-1]) / 100.0
        return int(text) if text.lstrip("+").isdigit() else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a fraction (0.1 or 10%) or a channel count (8), got {text!r}"
        ) from None


def amounts(text: str) -> tuple[float | int, ...]:
    return tuple(amount(part) for part in text.split(",") if part.strip())


def shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(p) for p in text.replace("x", ",").split(","))
    except ValueError:
        dims = ()
    if len(dims) < 2 or any(d < 1 for d in dims):
        raise argparse.ArgumentTypeError(
            f"expected a shape such as 1,3,32,32 (batch, channels, height, width), got {text!r}"
        )
    return dims


def existing_path(text: str) -> Path:
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text!r} does not exist")
    return path


# ----- models -----------------------------------------------------------------------------------
def add_model_args(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        required=required,
        metavar="NAME|MODULE:FACTORY",
        help="a built-in model (see 'filterprune inspect --list-models') or an importable "
        "factory such as mypkg.nets:build; read from model.json next to --load if omitted",
    )
    group.add_argument(
        "--model-arg",
        action="append",
        type=key_value,
        default=[],
        metavar="KEY=VALUE",
        help="keyword argument of the model factory (repeatable), e.g. width=0.25",
    )


def add_widths_args(parser: argparse.ArgumentParser) -> None:
    """--channel-txt / --spec: the widths of a checkpoint that has no plan.json."""
    group = parser.add_argument_group(
        "checkpoint widths", "for a checkpoint without plan.json, e.g. one made elsewhere"
    ).add_mutually_exclusive_group()
    group.add_argument(
        "--channel-txt",
        type=existing_path,
        metavar="FILE",
        help="one channel count per conv layer, in order (the output head's line may be left "
        "out); 'filterprune prune' writes RUN_DIR/channels.txt",
    )
    group.add_argument(
        "--spec",
        type=existing_path,
        metavar="FILE",
        help="widths JSON {layer: channels} or a plan.json of the checkpoint",
    )


def model_info(args: argparse.Namespace, load: Path | None) -> dict[str, Any]:
    """Model name, model arguments, task and input shape: flags first, then model.json."""
    info = read_model_json(load)
    if args.model:
        info = {**info, "model": args.model, "model_args": dict(args.model_arg)}
    elif args.model_arg:
        info["model_args"] = {**info.get("model_args", {}), **dict(args.model_arg)}
    if "model" not in info:
        where = f" (no {MODEL_JSON} next to {load})" if load is not None else ""
        raise CLIError(f"--model is required{where}; e.g. --model vgg16_bn --model-arg width=0.25")
    info.setdefault("model_args", {})
    return info


# ----- output -------------------------------------------------------------------------------------
class _TqdmHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        message = self.format(record)
        try:
            from tqdm.auto import tqdm

            tqdm.write(message, file=sys.stderr)
        except ImportError:
            print(message, file=sys.stderr)


def setup_logging(quiet: bool) -> None:
    logger = logging.getLogger("filterprune")
    for handler in list(logger.handlers):
        if isinstance(handler, _TqdmHandler):
            logger.removeHandler(handler)
    if not quiet:
        handler = _TqdmHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)


def say(args: argparse.Namespace, message: str) -> None:
    """An informational line on stderr (suppressed by --quiet)."""
    if not args.quiet:
        print(message, file=sys.stderr)


def wrap(text: str, width: int = 88) -> str:
    """Wrap each paragraph of ``text`` (help texts use a raw formatter to keep the examples)."""
    return "\n\n".join(textwrap.fill(p, width) for p in text.split("\n\n"))


def examples(lines: Sequence[str]) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)
