"""The ``filterprune`` command line: a thin shell over the Python API, one module per subcommand.

Run ``filterprune --help`` (or ``python -m filterprune --help``); :func:`main` takes an argument
list and returns the exit status, so the CLI can be driven from Python and tests.
"""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
