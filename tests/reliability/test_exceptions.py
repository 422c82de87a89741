"""filterprune's exceptions form one family under ``filterprune.FilterpruneError``.

Every exception class defined in ``src/filterprune`` derives from it, and the code raises no bare
builtin error for a user mistake (``raise ValueError(...)`` and the like): such an error would
reach a command-line user as an internal error. ``TypeError`` (a Python caller passing the wrong
kind of object), ``NotImplementedError``, ``AttributeError`` and ``AssertionError`` (the test
oracle) stay builtin.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import filterprune
from filterprune import FilterpruneError

SRC = Path(filterprune.__file__).resolve().parent
# programming errors, and IndexError: the sequence protocol (a dataset's index out of range)
ALLOWED = {
    "TypeError", "NotImplementedError", "AttributeError", "AssertionError", "SystemExit",
    "IndexError",
}  # fmt: skip
BUILTIN_ERRORS = {
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, BaseException)
} - ALLOWED


def _modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages([str(SRC)], prefix="filterprune."):
        if ".integrations" in info.name or info.name.endswith("__main__"):
            continue  # optional extras (lightning) may be missing; __main__ runs the CLI
        names.append(info.name)
    return names


def test_every_exception_class_is_a_filterprune_error():
    found = []
    for name in _modules():
        try:
            module = importlib.import_module(name)
        except ImportError:  # an optional extra that is not installed
            continue
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseException) and cls.__module__.startswith("filterprune"):
                found.append(cls)
                assert issubclass(cls, FilterpruneError), f"{cls.__module__}.{cls.__qualname__}"
    assert len(set(found)) >= 15  # the walk did reach the package


def test_exceptions_are_exported_and_keep_builtin_bases():
    assert issubclass(filterprune.ConfigError, ValueError)
    assert issubclass(filterprune.CheckpointError, ValueError)
    assert issubclass(filterprune.StorageError, OSError)
    assert issubclass(filterprune.MissingDependencyError, ImportError)
    assert issubclass(filterprune.PlanError, ValueError)
    assert issubclass(filterprune.TraceError, RuntimeError)
    for name in ("FilterpruneError", "ConfigError", "CheckpointError", "StorageError"):
        assert name in filterprune.__all__


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_no_bare_builtin_error_is_raised(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            func = node.exc.func
            if isinstance(func, ast.Name) and func.id in BUILTIN_ERRORS:
                pytest.fail(
                    f"{path.relative_to(SRC)}:{node.lineno}: raise {func.id}(...); raise a "
                    "filterprune.errors class (ConfigError, DataError, CheckpointError, ...) so "
                    "the command line prints it as a user error"
                )
