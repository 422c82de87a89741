"""Atomic file writes: a crash (even SIGKILL) leaves the old file or the new one, never half of one.

Each write goes to a hidden temporary file in the same folder (``.NAME.XXXX.tmp``), is flushed and
fsynced, then moved into place with ``os.replace``. A process killed mid-write leaves only such a
temporary behind; :func:`remove_leftovers` deletes them.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "discard_on_error",
    "fsync_dir",
    "remove_leftovers",
]

LEFTOVER_SUFFIXES = (".tmp", ".old")


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


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=1) + "\n")


def remove_leftovers(folder: str | Path) -> list[Path]:
    """Delete the temporaries that killed writers left in ``folder`` (``.*.tmp``, ``.*.old``).

    Call it only while no other process writes to ``folder``. Returns what was removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for entry in folder.iterdir():
        if entry.name.startswith(".") and entry.name.endswith(LEFTOVER_SUFFIXES):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


@contextmanager
def discard_on_error(folder: Path, *, kept: Callable[[], bool]) -> Iterator[None]:
    """Remove what the body created in ``folder`` if it fails before ``kept()`` holds.

    An error (or Ctrl-C) before the output is usable leaves no partial output behind: the folders
    this call found missing (``folder`` and its missing parents) are deleted, or, if ``folder``
    existed, the entries the body added to it. Once ``kept()`` is true (e.g. a run folder with
    its first checkpoint, which ``--resume`` continues) nothing is removed.
    """
    folder = Path(folder)
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
