"""What the subcommands write: log lines and progress on stderr, informational lines, help text.

Results go to stdout; everything else goes to stderr (the ``output`` flags, below).
"""

from __future__ import annotations

import argparse
import logging
import sys
import textwrap
from collections.abc import Sequence


def add_output_args(parser: argparse.ArgumentParser) -> None:
    """``--quiet``, ``--verbose`` and ``--debug``: what goes to stderr."""
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
