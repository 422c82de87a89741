"""Pieces shared by the subcommands: flags, value parsers, building models, logging, output."""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import textwrap
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import FilterpruneError
from ..models._factory import UntrustedCodeError, is_builtin, model_factory
from ..store.model_json import MODEL_JSON, find_model_json, read_model_json, write_model_json

__all__ = ["MODEL_JSON", "CLIError", "UsageError", "model_factory", "write_model_json"]


class CLIError(FilterpruneError):
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


def device(text: str) -> str:
    """A torch device this machine has: ``cpu``, ``cuda``, ``cuda:1``, ``mps``, ..."""
    import torch

    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a device name; use e.g. cpu, cuda or cuda:1"
        ) from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (dev.index is not None and dev.index >= count):
            have = "no CUDA device" if count == 0 else f"{count} CUDA device(s)"
            raise argparse.ArgumentTypeError(f"{text!r}: this machine has {have}; use cpu")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise argparse.ArgumentTypeError(f"{text!r}: MPS is not available here; use cpu")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise argparse.ArgumentTypeError(f"{text!r}: filterprune runs on cpu, cuda or mps")
    return text


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
        "factory such as mypkg.nets:build (needs --trust-model-code); read from model.json next "
        "to --load if omitted (a built-in model only)",
    )
    group.add_argument(
        "--trust-model-code",
        action="store_true",
        help="allow --model MODULE:FUNCTION: importing the module runs its code with your "
        "rights, so use it only for code you trust. A model.json never names code to run",
    )
    group.add_argument(
        "--model-arg",
        action="append",
        type=key_value,
        default=[],
        metavar="KEY=VALUE",
        help="keyword argument of the model factory (repeatable), e.g. width=0.25",
    )


def trust_flag(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "trust_model_code", False))


def build_factory(args: argparse.Namespace, spec: str, kwargs: dict[str, Any]):
    """The model factory for ``spec`` (a ``MODULE:FUNCTION`` only with --trust-model-code)."""
    return model_factory(spec, kwargs, trust_code=trust_flag(args))


def model_info(args: argparse.Namespace, load: Path | None) -> dict[str, Any]:
    """Model name, model arguments, task and input shape: flags first, then model.json.

    A model named in model.json is used only if it is a built-in model: a ``MODULE:FUNCTION``
    written in a file is never imported (the file may come from anyone). The user names such a
    factory on the command line instead, with --trust-model-code.
    """
    info: dict[str, Any] = {}
    found = find_model_json(load)
    if found is not None:
        info = read_model_json(found)
    if args.model:
        same = info.get("model") == args.model  # keep the saved arguments of the same model
        saved = info.get("model_args", {}) if same else {}
        info = {**info, "model": args.model, "model_args": {**saved, **dict(args.model_arg)}}
    else:
        if args.model_arg:
            info["model_args"] = {**info.get("model_args", {}), **dict(args.model_arg)}
        if "model" in info and not is_builtin(info["model"]):
            raise UntrustedCodeError(
                f"{found} names the model factory {info['model']!r}, which is not a built-in "
                "model; filterprune never imports code named in a file. If you trust that code, "
                f"name it yourself: --model {info['model']} --trust-model-code"
            )
    if "model" not in info:
        where = f" (no {MODEL_JSON} next to {load})" if load is not None else ""
        raise CLIError(f"--model is required{where}; e.g. --model vgg16_bn --model-arg width=0.25")
    info.setdefault("model_args", {})
    return info


@contextmanager
def discard_on_error(folder: Path, *, kept: Callable[[], bool]) -> Iterator[None]:
    """Remove what the body created in ``folder`` if it fails before ``kept()`` holds.

    An error (or Ctrl-C) before the output is usable leaves no partial output behind: the folders
    this call found missing (``folder`` and its missing parents) are deleted, or, if ``folder``
    existed, the entries the body added to it. Once ``kept()`` is true (e.g. a run folder with
    its first checkpoint, which ``--resume`` continues) nothing is removed.
    """
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    before = set(folder.iterdir()) if not missing and folder.is_dir() else set()
    try:
        yield
    except BaseException:
        if not kept():
            if missing:
                shutil.rmtree(missing[-1], ignore_errors=True)
            elif folder.is_dir():
                for entry in set(folder.iterdir()) - before:
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink(missing_ok=True)
        raise


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
