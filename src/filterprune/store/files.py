"""Atomic file writes and checked reads: a crash (even SIGKILL) leaves the old file or the new one.

Each write goes to a hidden temporary file in the same folder (``.NAME.XXXX.tmp``), is flushed and
fsynced, then moved into place with ``os.replace``. A process killed mid-write leaves only such a
temporary behind; :func:`remove_leftovers` deletes them. Files and folders are created with the
user's umask (a team can share a run folder); an operating-system error while writing (disk
full, read-only folder, file-size limit) becomes a :class:`~filterprune.errors.StorageError`
naming the path being written.

Crash tests: with ``FILTERPRUNE_TEST_CRASH_AT=N`` in the environment the process kills itself
(SIGKILL) at the N-th write window (:func:`crash_point`: before and after each rename, before a
removal); with ``FILTERPRUNE_TEST_CRASH_TRACE=FILE`` each window's label is appended to FILE. Both
are for filterprune's own tests and do nothing unless set.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import secrets
import shutil
import signal
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, StorageError

__all__ = [
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "crash_point",
    "exchange",
    "fsync_dir",
    "make_temp_dir",
    "read_json",
    "read_text",
    "remove_leftovers",
    "remove_tree",
]

_LEFTOVER = re.compile(r"\..+\.[0-9a-f]{8}\.(tmp|old)")
_CRASH_AT = "FILTERPRUNE_TEST_CRASH_AT"
_CRASH_TRACE = "FILTERPRUNE_TEST_CRASH_TRACE"
_windows_seen = 0


def crash_point(label: str) -> None:
    """A write window: where a crash test may kill the process (see the module docstring)."""
    global _windows_seen
    at, trace = os.environ.get(_CRASH_AT), os.environ.get(_CRASH_TRACE)
    if at is None and trace is None:
        return
    _windows_seen += 1
    if trace:
        with open(trace, "a", encoding="utf-8") as handle:
            handle.write(f"{_windows_seen} {label}\n")
    if at is not None and int(at) == _windows_seen:
        os.kill(os.getpid(), signal.SIGKILL)


def fsync_dir(path: Path) -> None:
    """Persist a folder's entries (a rename) where the platform allows it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _temp_name(path: Path, suffix: str) -> Path:
    return path.parent / f".{path.name}.{secrets.token_hex(4)}{suffix}"


def make_temp_dir(path: Path) -> Path:
    """A new hidden folder beside ``path`` (``.NAME.XXXX.tmp``), created with the user's umask."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            tmp = _temp_name(path, ".tmp")
            try:
                tmp.mkdir(0o777)  # the umask applies, as for any folder the user makes
                return tmp
            except FileExistsError:
                continue
    except OSError as exc:
        raise StorageError.wrap(exc, path, "writing") from None


def exchange(a: Path, b: Path, label: str) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported.

    Replacing a folder with two renames leaves a moment where neither exists; an exchange has
    none: ``b`` holds the new content and ``a`` the old one, which the caller then removes.
    """
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    crash_point(f"before exchange {label}")
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) != 0:
        return False  # e.g. a file system without exchange: the caller renames twice
    crash_point(f"after exchange {label}")
    return True


def _replace(src: Path, dst: Path, label: str) -> None:
    crash_point(f"before rename {label}")
    os.replace(src, dst)
    crash_point(f"after rename {label}")


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, rename)."""
    path = Path(path)
    tmp = _temp_name(path, ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # mode 0o666 with the umask applied, like open(path, "w"); never forced private
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        _replace(tmp, path, path.name)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, StorageError):
            raise StorageError.wrap(exc, path, "writing") from None
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=1) + "\n")


def read_text(path: str | Path, *, what: str = "file") -> str:
    """The UTF-8 text of ``path``; a missing, unreadable or binary file is an error naming it."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CheckpointError(
            f"{what} {str(path)!r} is not UTF-8 text (byte {exc.start}: {exc.reason}); pass the "
            "text file it should be, not a binary one"
        ) from None
    except FileNotFoundError:
        raise CheckpointError(f"{what} {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise CheckpointError(f"{what} {str(path)!r} is a folder, not a file") from None
    except OSError as exc:
        raise StorageError.wrap(exc, path, "reading") from None


def read_json(path: str | Path, *, what: str = "file") -> Any:
    """Read a JSON file; errors name the file and the problem."""
    path = Path(path)
    text = read_text(path, what=what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{what} {str(path)!r} is not valid JSON ({exc})") from None


def remove_tree(path: Path) -> None:
    """Remove a folder filterprune wrote (after the window where a crash test may kill)."""
    crash_point(f"before removing {path.name}")
    shutil.rmtree(path, ignore_errors=True)


def is_leftover(name: str) -> bool:
    """Whether ``name`` is a temporary of this module's writers (``.NAME.XXXXXXXX.tmp``/``.old``)."""
    return _LEFTOVER.fullmatch(name) is not None


def remove_leftovers(folder: str | Path) -> list[Path]:
    """Delete the temporaries that killed writers left in ``folder`` (``.NAME.XXXXXXXX.tmp``/``.old``).

    Call it only while no other process writes to ``folder``. Returns what was removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for entry in folder.iterdir():
        if is_leftover(entry.name):  # only names this module makes
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def refuse_symlink(path: str | Path, *, option: str) -> None:
    """Refuse an output folder (or file) that is a symbolic link.

    filterprune never writes through a link it did not create: a link planted at
    ``RUN_DIR/report`` (or at ``--out``, ``--run-dir``) would otherwise send its files, and the
    removal of files an earlier report wrote, to wherever the link points.

    Raises:
        ConfigError: ``path`` is a symbolic link; the message names it, its target and ``option``.
    """
    from ..errors import ConfigError

    path = Path(path)
    if path.is_symlink():
        target = os.readlink(path)
        raise ConfigError(
            f"{option} {str(path)!r} is a symbolic link (to {target!r}); filterprune never writes "
            f"through a link it did not create, so nothing was written: pass the real folder as "
            f"{option}, or remove the link"
        )
