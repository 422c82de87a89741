"""What the subcommands share on the way in: the parser, its errors, shared flags, value parsers.

What they write (log lines, informational lines, help text) and its flags are in
:mod:`._output`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .._numbers import describe_range, real_problem
from ..errors import FilterpruneError
from ..recipes.models import saved_model


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
    parsed = parse_value(value.strip())
    if _has_bad_number(parsed):
        raise argparse.ArgumentTypeError(
            f"{key.strip()}={value.strip()}: numbers must be finite and within +-1e30; got {text!r}"
        )
    return key.strip(), parsed


def _has_bad_number(value: Any) -> bool:
    """NaN, infinity or a magnitude above 1e30 anywhere in a parsed KEY=VALUE value."""
    if isinstance(value, list):
        return any(_has_bad_number(v) for v in value)
    if isinstance(value, dict):
        return any(_has_bad_number(v) for v in value.values())
    return isinstance(value, float) and real_problem(value) is not None


def real(
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
):
    """An argparse ``type=`` for a float flag: finite and in the range, else a usage error
    naming the flag (argparse adds ``argument --FLAG:``), the range and the value."""
    span = describe_range(low, high, low_open, high_open)

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = None
        if value is None or real_problem(
            value, low=low, high=high, low_open=low_open, high_open=high_open
        ):
            raise argparse.ArgumentTypeError(f"expected a finite number in {span}, got {text!r}")
        return value

    parse.__name__ = "real"
    return parse


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


def batch_sizes(text: str) -> list[int]:
    """``"1,16"`` -> [1, 16]: one or more positive batch sizes, comma-separated. The one parser of
    batch-size flags; :class:`FlatList` lets a flag also take them space-separated."""
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        sizes = []
    if not sizes or any(b < 1 for b in sizes):
        raise argparse.ArgumentTypeError(
            f"expected positive integers such as 1,16 (or 1 16), got {text!r}"
        )
    return sizes


class FlatList(argparse.Action):
    """``nargs="+"`` of a list-valued ``type=`` (e.g. :func:`batch_sizes`): ``1,16 32`` ->
    [1, 16, 32], repeats dropped, so space- and comma-separated values mix."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # type: ignore[override]
        flat = [v for value in values for v in (value if isinstance(value, list) else [value])]
        setattr(namespace, self.dest, list(dict.fromkeys(flat)))


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
        "weights, load your own with --load) or an importable factory such as mypkg.nets:build "
        "(needs --trust-model-code); read from model.json next to --load if omitted (there: "
        "built-in and hub models only)",
    )
    group.add_argument(
        "--trust-model-code",
        action="store_true",
        help="allow --model MODULE:FUNCTION, or the factory that model.json next to --load "
        "remembers: importing the module runs its code with your rights, so use it only for "
        "code and folders you trust. Without it a model.json never makes filterprune run code",
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
    model_args = dict(args.model_arg) if args.model_arg else None
    return saved_model(
        load, model=args.model, model_args=model_args, require_task=False, trust_code=trust(args)
    )


def trust(args: argparse.Namespace) -> bool:
    """--trust-model-code: a ``MODULE:FUNCTION`` model may be imported."""
    return bool(getattr(args, "trust_model_code", False))


def device(text: str) -> str:
    """A torch device this machine has: ``cpu``, ``cuda``, ``cuda:1``, ``mps``."""
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
