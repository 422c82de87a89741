"""Progress that someone can see, and that leaves clean logs.

Every long loop in filterprune goes through :func:`progress`. On a terminal (or in a notebook)
it draws a tqdm bar. A bar redraws its line with carriage returns, which turns a log file or CI
output into noise; so when standard error is not a terminal, or tqdm is missing, the loop prints a
plain line to standard error instead, every 10 s of wall time (``desc: 120/500 it (24 %), 10 s``),
counted from the process's last progress line, so that nothing runs for long without a word: a
loop that starts after a silent stretch speaks after its first item.
``FILTERPRUNE_PROGRESS=1`` forces bars, ``=0`` turns bars and lines off;
``FILTERPRUNE_PROGRESS_EVERY=S`` sets the seconds between plain lines. Each loop also takes
``enabled=False`` (``progress=False`` in the public functions, ``--quiet`` on the command line).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

__all__ = ["bars_wanted", "line_interval", "log_to_stderr", "progress", "progress_off"]

T = TypeVar("T")

# when this process last printed a progress line (at first: when it imported this module); a loop
# that starts after a silent stretch (a ranking, a removal, a loop that printed nothing) speaks as
# soon as the process has been quiet for the interval, not only after its own interval
_last_line = [time.monotonic()]


def progress_off() -> bool:
    """Whether ``FILTERPRUNE_PROGRESS`` turns every bar and progress line off."""
    forced = os.environ.get("FILTERPRUNE_PROGRESS", "").strip().lower()
    return forced in ("0", "false", "no", "off")


def line_interval() -> float:
    """Seconds between plain progress lines: ``FILTERPRUNE_PROGRESS_EVERY``, default 10."""
    try:
        return max(0.0, float(os.environ.get("FILTERPRUNE_PROGRESS_EVERY", "10")))
    except ValueError:
        return 10.0


def bars_wanted() -> bool:
    """Whether a progress bar may be drawn now: standard error is a terminal, or a notebook runs.

    ``FILTERPRUNE_PROGRESS=1`` / ``0`` overrides the check.
    """
    forced = os.environ.get("FILTERPRUNE_PROGRESS", "").strip().lower()
    if forced in ("1", "true", "yes", "on"):
        return True
    if forced in ("0", "false", "no", "off"):
        return False
    stream = sys.stderr
    try:
        if stream is not None and stream.isatty():
            return True
    except (AttributeError, ValueError):  # closed or replaced stream
        return False
    return "ipykernel" in sys.modules


class _NoBar:
    """What :func:`progress` returns when no bar is drawn: the same methods, doing nothing."""

    def __init__(self, iterable: Iterable[Any] | None) -> None:
        self._iterable = iterable

    def __iter__(self) -> Iterator[Any]:
        return iter(self._iterable if self._iterable is not None else ())

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


class _Lines(_NoBar):
    """Off a terminal: one plain line to standard error at most every :func:`line_interval` s."""

    def __init__(
        self, iterable: Iterable[Any] | None, *, total: Any, desc: str, unit: str, initial: int
    ) -> None:
        super().__init__(iterable)
        self.n, self.total, self.desc, self.unit = initial, total, desc or "progress", unit
        self.start = self.last = time.monotonic()
        self.interval = line_interval()
        self.postfix = ""
        self.printed = False

    def __iter__(self) -> Iterator[Any]:
        for item in super().__iter__():
            yield item
            self.update(1)
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.interval or now - _last_line[0] >= self.interval:
            self.last = now
            self._line(now)

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in kwargs.items())

    def close(self) -> None:
        if self.printed:  # a long loop says that it finished
            self._line(time.monotonic(), done=True)
        self.printed = False

    def _line(self, now: float, *, done: bool = False) -> None:
        count = f"{self.n} {self.unit}"
        if self.total:
            count = f"{self.n}/{self.total:g} {self.unit} ({100 * self.n / self.total:.0f} %)"
        extra = f", {self.postfix}" if self.postfix else ""
        state = "done in" if done else "after"
        print(f"{self.desc}: {count} {state} {now - self.start:.0f} s{extra}", file=sys.stderr,
              flush=True)  # fmt: skip
        _last_line[0] = now
        self.printed = True


def progress(
    iterable: Iterable[T] | None = None,
    *,
    enabled: bool = True,
    total: int | float | None = None,
    desc: str = "",
    unit: str = "it",
    initial: int = 0,
    lines: bool = True,
) -> Any:
    """A tqdm bar over ``iterable`` (or a manual one with ``update``), or plain lines, or nothing.

    When ``enabled``: a bar if tqdm is installed and :func:`bars_wanted` holds (removed when done,
    ``leave=False``); otherwise, with ``lines``, a plain line to standard error every
    :func:`line_interval` seconds of wall time while the loop runs, and one when a loop that
    printed finishes. ``FILTERPRUNE_PROGRESS=0`` turns both off. Whatever is shown, the result
    iterates like ``iterable`` and has ``update``, ``set_postfix`` and ``close``.
    """
    if not enabled or progress_off():
        return _NoBar(iterable)
    if bars_wanted():
        try:
            from tqdm.auto import tqdm
        except ImportError:
            pass
        else:
            return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, leave=False)
    if lines:
        return _Lines(iterable, total=total, desc=desc, unit=unit, initial=initial)
    return _NoBar(iterable)


@contextmanager
def log_to_stderr(enabled: bool = True) -> Iterator[None]:
    """While the block runs, show filterprune's INFO lines on standard error.

    What Lightning does for its own logger: a Python caller who configured nothing still sees what
    a long call is doing. Nothing changes when ``enabled`` is false, when
    ``FILTERPRUNE_PROGRESS=0``, or when logging is configured (the ``filterprune`` logger or the
    root logger has a handler): the records then go where the caller sends them.
    """
    logger = logging.getLogger("filterprune")
    if not enabled or progress_off() or logger.hasHandlers():
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("filterprune: %(message)s"))
    level = logger.level
    logger.addHandler(handler)
    if level == logging.NOTSET or level > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
