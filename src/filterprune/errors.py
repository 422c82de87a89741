"""filterprune's exceptions: one base class, :class:`FilterpruneError`, for every one of them.

Each subclass also keeps the builtin base a caller would expect (``ValueError`` for a bad
value, ``ImportError`` for a missing optional package, ``OSError`` for a file that cannot be
written), so ``except ValueError`` keeps working, and ``except filterprune.FilterpruneError``
catches everything filterprune raises on purpose. Messages name the thing (option, file,
field, module), the bad value and the fix, in one line.

The command line prints a :class:`FilterpruneError` as ``filterprune: error: MESSAGE``; any
other exception reaching it is a bug in filterprune.

This module is on the ground floor: it imports nothing of filterprune.
"""

from __future__ import annotations

import errno

__all__ = [
    "AllocationError",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "FilterpruneError",
    "MissingDependencyError",
    "MissingFileError",
    "NonFiniteError",
    "RunLockedError",
    "SetupError",
    "StorageError",
    "UnknownNameError",
    "UnreadableFileError",
]


class FilterpruneError(Exception):
    """The base class of every exception filterprune raises for a user error."""


class ConfigError(FilterpruneError, ValueError):
    """A setting (config field, keyword argument, option) is invalid; the message names it, the
    value and the fix."""


class CheckpointError(FilterpruneError, ValueError):
    """A checkpoint, run folder or file of one is missing, incomplete, damaged or does not fit the
    model; the message names the file (and field) and the fix."""


class DataError(FilterpruneError, ValueError):
    """A data file or folder (images, masks, labels) cannot be used; the message names the file."""


class UnreadableFileError(DataError, OSError):
    """A file exists but its content cannot be read (not an image, cut short); the message names
    the file."""


class MissingFileError(FilterpruneError, FileNotFoundError):
    """A file or folder that was named (an option, a field of a file) does not exist."""


class UnknownNameError(FilterpruneError, KeyError, ValueError):
    """A name (model, task, group, column) is not known; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError's own quotes the message
        return str(self.args[0]) if self.args else ""


class NonFiniteError(FilterpruneError, FloatingPointError):
    """A loss, weight or score is NaN or infinite; the message names where."""


class SetupError(FilterpruneError, RuntimeError):
    """The environment or the model cannot do what was asked (no process group, no working
    exporter, a loss that ignores a pruned layer); the message says what to change."""


class MissingDependencyError(FilterpruneError, ImportError):
    """An optional package a feature needs is not installed; the message says what to install."""


class StorageError(FilterpruneError, OSError):
    """A file or folder could not be written or read (disk full, read-only folder, file-size
    limit, permissions); the message names the path and the operating system's reason."""

    @classmethod
    def wrap(cls, exc: OSError, path: object, doing: str = "writing") -> StorageError:
        """``StorageError`` for ``exc``, raised while ``doing`` (e.g. "writing") ``path``."""
        reason = exc.strerror or str(exc) or type(exc).__name__
        fix = _FIXES.get(exc.errno or 0, "check the path and its folder")
        err = cls(exc.errno, f"cannot finish {doing} {str(path)!r}: {reason}; {fix}")
        err.filename = str(path)
        return err

    def __str__(self) -> str:  # OSError's own adds "[Errno N]" and repeats the file name
        return str(self.args[-1]) if self.args else ""


_FIXES = {
    errno.ENOSPC: "free some disk space or choose a folder on another disk",
    errno.EDQUOT: "free some of your disk quota or choose a folder on another disk",
    errno.EROFS: "the file system is read-only: choose a writable folder",
    errno.EACCES: "you may not write there: choose a folder you own or fix its permissions",
    errno.EPERM: "you may not write there: choose a folder you own or fix its permissions",
    errno.EFBIG: "the file is larger than the file-size limit (ulimit -f): raise the limit",
    errno.ENOENT: "a folder on the way does not exist (or was removed meanwhile)",
    errno.ENOTDIR: "a part of the path is a file, not a folder: choose another path",
    errno.EISDIR: "a folder has that name: choose another path",
}


class RunLockedError(FilterpruneError, RuntimeError):
    """Another process is writing the run folder; the message names it (PID, command, since)."""


class AllocationError(FilterpruneError, MemoryError):
    """This machine cannot allocate the memory a step needs (a model, input or batch too large);
    the message says what was being done, how much was asked for, and what to make smaller."""
