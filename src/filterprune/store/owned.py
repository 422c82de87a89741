"""Folders filterprune may start over in or clean up: it removes only what it wrote.

:func:`discard_on_error` removes what a failing command created before its output was usable.

A command that reuses its output folder (the demo) writes a record of every file it left there
(relative path, size, modification time). Before starting over it checks the folder against the
record: a file that is not in it, or that changed since, means someone else put it there, and
the command refuses, leaving the folder untouched. Otherwise exactly the recorded files are
removed (and the folders they leave empty).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import ConfigError, StorageError
from .files import atomic_write_json, read_json
from .lock import LOCK_NAME, RunLockedError

__all__ = [
    "check_owned",
    "discard_on_error",
    "foreign_file",
    "record_files",
    "remove_recorded",
    "write_record",
]


def _stat(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def record_files(folder: str | Path, *, skip: tuple[str, ...] = ()) -> dict[str, list[int]]:
    """Relative path -> [size, mtime_ns] of every file under ``folder`` (``skip``: names left out)."""
    folder = Path(folder)
    skip = (*skip, LOCK_NAME)  # the writer's lock is not content: it stays with the folder
    return {
        p.relative_to(folder).as_posix(): _stat(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.relative_to(folder).as_posix() not in skip
    }


def _recorded(record_path: Path) -> dict[str, Any] | None:
    try:
        data = read_json(record_path, what="record")
    except (OSError, ValueError):
        return None
    files = data.get("files") if isinstance(data, dict) else None
    return files if isinstance(files, dict) else None


def foreign_file(folder: str | Path, record_name: str) -> str | None:
    """Why ``folder`` may not be started over (``None``: it holds only what the record lists)."""
    folder = Path(folder)
    record = folder / record_name
    if not record.is_file():
        entries = sorted(folder.rglob("*"))
        first = next((p for p in entries if not p.is_dir() and p.name != LOCK_NAME), None)
        if first is None and not [p for p in entries if p.is_dir()]:
            return None  # nothing but a lock: an empty folder
        name = first.relative_to(folder).as_posix() if first is not None else "folders"
        return f"holds {name!r}, which filterprune did not write (no {record_name} lists it)"
    files = _recorded(record)
    if files is None:
        return f"has a {record_name} that filterprune did not write"
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if rel == LOCK_NAME and not path.is_symlink():
            continue  # the lock of whoever writes here (filterprune's own)
        if path.is_symlink() or (not path.is_dir() and rel != record_name and rel not in files):
            return f"holds {rel!r}, which filterprune did not write"
        if path.is_file() and rel != record_name and _stat(path) != files[rel]:
            return f"holds {rel!r}, which changed after filterprune wrote it"
    return None


def check_owned(folder: str | Path, record_name: str, *, option: str) -> None:
    """Refuse (``ConfigError``) to write over ``folder`` unless it is new, empty, or holds
    only the unchanged files a previous command of filterprune recorded in ``record_name``."""
    folder = Path(folder)
    if not folder.exists():
        return
    if not folder.is_dir():
        raise ConfigError(f"{option} {folder} is a file, not a folder; choose another {option}")
    if not [p for p in folder.iterdir() if p.name != LOCK_NAME]:
        return
    why = foreign_file(folder, record_name)
    if why is not None:
        raise ConfigError(
            f"{option} {folder} {why}; filterprune only replaces files it wrote, so the folder "
            f"is left untouched: choose another {option} or empty it yourself"
        )


def write_record(folder: str | Path, record_name: str, **fields: Any) -> Path:
    """Record every file now in ``folder`` (and ``fields``) for :func:`check_owned` later."""
    files = record_files(folder, skip=(record_name,))
    return atomic_write_json(Path(folder) / record_name, {**fields, "files": files})


def remove_recorded(folder: str | Path, record_name: str, *, option: str) -> None:
    """Remove the files a previous run recorded in ``folder`` and the folders left empty.

    Refuses (``ConfigError`` naming the folder, the file and ``option``) if ``folder`` holds
    anything the record does not list.
    """
    folder = Path(folder)
    check_owned(folder, record_name, option=option)
    if not folder.exists() or not any(folder.iterdir()):
        return
    files = _recorded(folder / record_name) or {}
    try:
        for rel in [*files, record_name]:
            (folder / rel).unlink(missing_ok=True)
        for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()  # the folder itself stays: the user may have made it
    except OSError as exc:
        raise StorageError.wrap(exc, folder, "emptying") from None


@contextmanager
def discard_on_error(folder: Path, *, kept: Callable[[], bool]) -> Iterator[None]:
    """Remove what the body created in ``folder`` if it fails before ``kept()`` holds.

    An error (or Ctrl-C) before the output is usable leaves no partial output behind: the folders
    this call found missing (``folder`` and its missing parents) are deleted, or, if ``folder``
    existed, the entries the body added to it. Once ``kept()`` is true (e.g. a run folder with
    its first checkpoint, which ``--resume`` continues) nothing is removed, nor when the body
    was refused the folder's lock (:class:`~filterprune.store.lock.RunLockedError`): then the
    folder belongs to the process that holds it.
    """
    folder = Path(folder)
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    before = set(folder.iterdir()) if not missing and folder.is_dir() else set()
    try:
        yield
    except RunLockedError:
        raise  # another process owns the folder: nothing here is ours to remove
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
