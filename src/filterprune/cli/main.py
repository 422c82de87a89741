"""``filterprune`` entry point: builds the parser from the subcommand modules and reports errors.

Errors are printed as one line, ``filterprune: error: ...``, with exit status 2 for usage errors
and 1 for everything else; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .._version import __version__
from . import demo, inspect, prune, report, train
from . import eval as eval_cmd
from ._common import CLIError, Parser, UsageError, add_common, examples, setup_logging, wrap

COMMANDS = (train, prune, eval_cmd, inspect, report, demo)

# Exceptions whose message is meant for the user; others also show their type.
_USER_ERRORS = (CLIError, ValueError, KeyError, FileNotFoundError, ImportError, PermissionError)


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
        add_common(p)
        p.set_defaults(handler=command.run)
    return parser


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args and isinstance(exc.args[0], str):
        text = exc.args[0]
    else:
        text = str(exc) or type(exc).__name__
    text = " ".join(text.split())
    if not isinstance(exc, _USER_ERRORS):
        text = f"{type(exc).__name__}: {text} (run with --debug for the traceback)"
    return f"filterprune: error: {text}"


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        setup_logging(args.quiet, args.verbose)
        return int(args.handler(args) or 0)
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
            raise
        print(_one_line(exc), file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
