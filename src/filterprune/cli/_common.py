"""Pieces shared by the subcommands: flags, value parsers, building models, logging, output."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import shutil
import sys
import textwrap
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from torch import nn

from ..loop.checkpoint import atomic_write_json, read_json

MODEL_JSON = "model.json"


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
    group = parser.add_argument_group(
        "output",
        "Results go to stdout, progress and log lines to stderr. Progress bars are drawn only "
        "on a terminal (FILTERPRUNE_PROGRESS=1/0 forces them on/off); in a log file each "
        "pruning iteration is one line.",
    )
    level = group.add_mutually_exclusive_group()
    level.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="no progress bars or log lines, only warnings and errors",
    )
    level.add_argument(
        "--verbose", "-v", action="store_true", help="also debug log lines (logger names shown)"
    )
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
        metavar="NAME|HUB:NAME|MODULE:FACTORY",
        help="a built-in model (see 'filterprune inspect --list-models'), a torchvision or timm "
        "model when that library is installed (torchvision:resnet18, timm:convnext_atto; random "
        "weights, load your own with --load) or an importable factory such as mypkg.nets:build; "
        "read from model.json next to --load if omitted",
    )
    group.add_argument(
        "--model-arg",
        action="append",
        type=key_value,
        default=[],
        metavar="KEY=VALUE",
        help="keyword argument of the model factory (repeatable), e.g. width=0.25",
    )


def model_factory(spec: str, kwargs: dict[str, Any]) -> Callable[[], nn.Module]:
    """A zero-argument factory for a built-in model, a hub name or a ``module:function`` path.

    Hub names (``torchvision:resnet18``, ``timm:convnext_atto``) go through the fixed table of
    :mod:`filterprune.models.hub`, never through an import of the text itself.
    """
    from ..models import HubError, create_hub_model, is_hub_name

    if is_hub_name(spec):

        def factory(**kw: Any) -> nn.Module:
            try:
                return create_hub_model(spec, **kw)
            except HubError as exc:
                raise CLIError(f"--model {exc}") from None

    elif ":" in spec:
        module_name, _, attr = spec.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise CLIError(f"--model {spec}: cannot import {module_name!r} ({exc})") from None
        factory = getattr(module, attr, None)
        if not callable(factory):
            raise CLIError(f"--model {spec}: {module_name!r} has no callable {attr!r}")
    else:
        from ..models import create_model, list_models

        if spec not in list_models():
            raise CLIError(
                f"--model {spec}: unknown model; built-in models: {', '.join(list_models())}; "
                "or pass an importable factory as MODULE:FUNCTION"
            )

        def factory(**kw: Any) -> nn.Module:
            return create_model(spec, **kw)

    def build() -> nn.Module:
        try:
            model = factory(**kwargs)
        except TypeError as exc:
            raise CLIError(f"--model {spec} with --model-arg {kwargs}: {exc}") from None
        if not isinstance(model, nn.Module):
            raise CLIError(f"--model {spec} returned {type(model).__name__}, not an nn.Module")
        return model

    return build


def find_model_json(path: Path | None) -> Path | None:
    """``model.json`` in ``path``, or up to two folders above it (a run folder's checkpoint)."""
    if path is None:
        return None
    folder = path if path.is_dir() else path.parent
    for candidate in (folder, folder.parent, folder.parent.parent):
        if (candidate / MODEL_JSON).is_file():
            return candidate / MODEL_JSON
    return None


def model_info(args: argparse.Namespace, load: Path | None) -> dict[str, Any]:
    """Model name, model arguments, task and input shape: flags first, then model.json."""
    info: dict[str, Any] = {}
    found = find_model_json(load)
    if found is not None:
        info = read_json(found, what="model description")
    if args.model:
        info = {**info, "model": args.model, "model_args": dict(args.model_arg)}
    elif args.model_arg:
        info["model_args"] = {**info.get("model_args", {}), **dict(args.model_arg)}
    if "model" not in info:
        where = f" (no {MODEL_JSON} next to {load})" if load is not None else ""
        raise CLIError(f"--model is required{where}; e.g. --model vgg16_bn --model-arg width=0.25")
    info.setdefault("model_args", {})
    return info


def write_model_json(folder: Path, info: dict[str, Any]) -> None:
    atomic_write_json(folder / MODEL_JSON, info)


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


def setup_logging(quiet: bool, verbose: bool = False) -> None:
    """Send the ``filterprune`` loggers to stderr: WARNING with --quiet, DEBUG with --verbose."""
    logger = logging.getLogger("filterprune")
    for handler in list(logger.handlers):
        if isinstance(handler, _TqdmHandler):
            logger.removeHandler(handler)
    handler = _TqdmHandler()
    pattern = "%(levelname)s %(name)s: %(message)s" if verbose else "%(message)s"
    handler.setFormatter(logging.Formatter(pattern))
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False  # one line per record, even when the root logger has a handler


def say(args: argparse.Namespace, message: str) -> None:
    """An informational line on stderr (suppressed by --quiet)."""
    if not args.quiet:
        print(message, file=sys.stderr)


def wrap(text: str, width: int = 88) -> str:
    """Wrap each paragraph of ``text`` (help texts use a raw formatter to keep the examples)."""
    return "\n\n".join(textwrap.fill(p, width) for p in text.split("\n\n"))


def examples(lines: Sequence[str]) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)
