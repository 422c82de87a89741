"""``filterprune`` entry point: builds the parser from the subcommand modules and reports errors.

Errors are printed as one line, ``filterprune: error: ...``, with exit status 2 for usage errors
and 1 for everything else; ``--debug`` shows the traceback instead. Every error meant for the user
is a :class:`filterprune.FilterpruneError`; any other exception reaching this point is a bug in
filterprune and is printed as ``filterprune: internal error: ...``.

Python warnings raised while a command runs (e.g. by torch while reading a file) are held back
and printed after the command's own output, so that a failing command prints its one-line error
and nothing before it (``--debug`` shows them with the traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence

from .._memory import allocation_message, is_allocation_failure
from .._version import __version__
from ..errors import FilterpruneError, StorageError
from . import demo, inspect, prune, report, train
from . import eval as eval_cmd
from ._args import Parser, UsageError
from ._output import add_output_args, examples, setup_logging, wrap

COMMANDS = (train, prune, eval_cmd, inspect, report, demo)


def build_parser() -> Parser:
    parser = Parser(
        prog="filterprune",
        description=wrap(
            "Prune whole filters of PyTorch CNNs: inspect, train a baseline, prune "
            "iteratively (rank -> remove -> finetune -> evaluate), evaluate and report."
        ),
        epilog=examples(
            [
                "filterprune demo --quick",
                "filterprune inspect --model resnet18 --model-arg stem=cifar",
                "filterprune train --task classify --model vgg16_bn --model-arg width=0.25 "
                "--model-arg head=cifar --out runs/base",
                "filterprune prune --load runs/base --criterion taylor --amount 0.1 "
                "--finetune-steps 100 --max-iterations 5 --run-dir runs/pruned",
                "filterprune report runs/pruned",
                "filterprune COMMAND --help",
            ]
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"filterprune {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for command in COMMANDS:
        p = sub.add_parser(
            command.NAME,
            help=command.HELP,
            description=wrap(command.DESCRIPTION),
            epilog=examples(command.EXAMPLES),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.add_arguments(p)
        add_output_args(p)
        p.set_defaults(handler=command.run)
    return parser


def _one_line(exc: BaseException, command: str | None = None) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, FilterpruneError):
        return f"filterprune: error: {text}"
    if isinstance(exc, OSError) and exc.filename is not None:  # the disk or the file system
        return f"filterprune: error: {StorageError.wrap(exc, exc.filename, 'using')}"
    if is_allocation_failure(exc):  # MemoryError, torch's "can't allocate memory" RuntimeError
        what = f"running 'filterprune {command}'" if command else "running filterprune"
        fix = (
            "make the step smaller: a smaller --batch-size, --image-size or --input-shape, a "
            "narrower model (--model-arg), or another --device"
        )
        return f"filterprune: error: {allocation_message(exc, what, fix)}"
    return (
        f"filterprune: internal error: {type(exc).__name__}: {text} (a bug in filterprune: "
        "please report it with the traceback that --debug prints)"
    )


def _show(caught: list[warnings.WarningMessage]) -> None:
    for w in caught:
        print(
            warnings.formatwarning(w.message, w.category, w.filename, w.lineno),
            end="",
            file=sys.stderr,
        )


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def _printable_paths() -> None:
    """A path that is not valid UTF-8 (any bytes on Linux) prints escaped, instead of failing
    the command with ``UnicodeEncodeError`` after its work is done."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream.errors == "strict":
                stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError, OSError):
            pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    _printable_paths()
    debug = "--debug" in argv
    parser = build_parser()
    caught: list[warnings.WarningMessage] = []
    command = next((a for a in argv if not a.startswith("-")), None)
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        setup_logging(args.quiet, args.verbose)
        with warnings.catch_warnings(record=True) as caught:
            status = int(args.handler(args) or 0)
        _show(caught)
        return status
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else 0
    except BrokenPipeError:  # e.g. piped into `head`
        _silence_stdout()
        return 0
    except KeyboardInterrupt:
        print("filterprune: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug:
            _show(caught)
            raise
        print(_one_line(exc, command), file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
