"""One writer per folder: an exclusive lock held for the whole run (or report, or demo).

A run folder (and a report folder, and the demo's folder) is written by one process at a time. :func:`run_lock` takes an operating-system
lock (``fcntl.flock`` on POSIX, ``msvcrt.locking`` on Windows) on ``RUN/.lock``. The kernel
releases it when the process ends, however it ends (``kill -9`` included), so a lock is never
stale; the file itself stays and is reused by the next run. The holder writes who it is (PID,
command line, host, start time) into the file, and a second writer is refused with a
:class:`RunLockedError` that names it.

Readers (``eval``, ``report``, :func:`filterprune.load`) take no lock: ``state.json`` is switched
atomically and only ever names complete checkpoints, so they read the last complete one.

The lock is re-entrant within a process (the CLI, the recipe and the loop each take it; only
the first acquisition locks), and it locks the lock file that is *in* the folder: if another
process removed the folder between our ``open`` and ``flock``, the lock is taken again.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import RunLockedError, StorageError

__all__ = ["LOCK_NAME", "RunLockedError", "holder_of", "run_lock"]

LOCK_NAME = ".lock"

RUN_FIX = (
    "wait for it to finish (or stop it), or choose another --run-dir. 'filterprune eval' and "
    "'filterprune report' may read the folder meanwhile"
)

# resolved folder -> [file descriptor, depth]
_HELD: dict[str, list[int]] = {}


def _try_lock(fd: int) -> bool:
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def holder_of(folder: str | Path) -> dict[str, Any] | None:
    """What the process holding ``folder``'s lock wrote about itself (``None`` if unreadable)."""
    try:
        text = (Path(folder) / LOCK_NAME).read_text(encoding="utf-8")
        data = json.loads(text)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _describe(holder: dict[str, Any] | None) -> str:
    if not holder:
        return "another process (it has not written its details yet)"
    pid = holder.get("pid", "?")
    command = str(holder.get("command", "?"))[:120]
    since = holder.get("since")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since)) if since else "?"
    host = holder.get("host")
    where = f" on {host}" if host and host != socket.gethostname() else ""
    return f"process {pid}{where} ('{command}', since {when})"


def _open_locked(folder: Path, what: str, fix: str, made: list[Path]) -> int:
    """Open and lock ``folder/.lock``; raise :class:`RunLockedError` if someone holds it.

    ``made`` receives what this call created (missing folders, the lock file), so that a body
    that wrote nothing leaves nothing behind.
    """
    path = folder / LOCK_NAME
    for _ in range(10):
        made.clear()
        made.extend(reversed([p for p in (folder, *folder.parents) if not p.exists()]))
        try:
            folder.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
                made.append(path)
            except FileExistsError:
                fd = os.open(path, os.O_RDWR)
        except OSError as exc:
            raise StorageError.wrap(exc, path, "locking") from None
        if not _try_lock(fd):
            os.close(fd)
            raise RunLockedError(
                f"{what} {str(folder)!r} is being written by {_describe(holder_of(folder))}; {fix}"
            )
        try:  # the folder may have been removed (and made again) between open and lock
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except OSError:
            same = False
        if same:
            return fd
        os.close(fd)
    raise StorageError(f"could not lock {str(path)!r}: it keeps being replaced by another process")


def _write_holder(fd: int) -> None:
    holder = {
        "pid": os.getpid(),
        "command": " ".join(" ".join(getattr(sys, "orig_argv", sys.argv)).split())[:300],
        "host": socket.gethostname(),
        "since": time.time(),
    }
    data = json.dumps(holder).encode()
    try:
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, data)  # (os.pwrite does not exist on Windows)
    except OSError:
        pass  # the details are a courtesy: the lock itself holds


@contextmanager
def run_lock(
    folder: str | Path,
    *,
    enabled: bool = True,
    what: str = "run folder",
    fix: str = RUN_FIX,
) -> Iterator[None]:
    """Hold the exclusive write lock of ``folder`` (created if missing) in the body.

    Args:
        folder: The folder: a run folder, a report folder, the demo's folder.
        enabled: ``False`` takes no lock (ranks other than 0 of a process group, which never
            write the folder).
        what, fix: How the refusal names the folder, and what it tells the user to do.

    Raises:
        RunLockedError: Another process holds the lock; the message names it.
    """
    if not enabled:
        yield
        return
    folder = Path(folder)
    key = os.path.realpath(folder)
    held = _HELD.get(key)
    if held is not None and folder.is_dir():
        held[1] += 1
        try:
            yield
        finally:
            held[1] -= 1
        return
    made: list[Path] = []
    fd = _open_locked(folder, what, fix, made)
    _write_holder(fd)
    _HELD[key] = [fd, 1]
    try:
        yield
    finally:
        del _HELD[key]
        _tidy(folder, made)
        os.close(fd)  # closing releases the lock; the file stays for the next run


def _tidy(folder: Path, made: list[Path]) -> None:
    """If the body left ``folder`` holding only the lock we created, remove what we made."""
    lock = folder / LOCK_NAME
    try:
        if lock not in made or [p for p in folder.iterdir() if p.name != LOCK_NAME]:
            return
        lock.unlink()  # still locked: a process waiting on it will see it is gone and retry
        for path in reversed(made[:-1]):
            path.rmdir()
    except OSError:
        pass  # a folder someone else wrote into meanwhile stays
