"""Import the module of a user's model factory: ``mymodule`` from the current folder, or a file.

``--model mymodule:build`` finds ``mymodule.py`` in the current folder as ``python -c`` would
(the folder is put on the import path, after the installed packages are tried), and
``--model ./nets/mymodule.py:build`` loads that file. Both run the module's code, so callers only
get here once the user has trusted it (``--trust-model-code``).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

from ..errors import MissingDependencyError

__all__ = ["import_user_module", "is_file_spec", "stable_spec"]


def is_file_spec(module_name: str) -> bool:
    """Whether ``module_name`` is a file path (``./mymodule.py``, ``nets/m.py``)."""
    return module_name.endswith(".py") or "/" in module_name or os.sep in module_name


def import_user_module(module_name: str) -> ModuleType:
    """The module ``module_name`` (dotted, from the path or the current folder) or a ``.py`` file.

    Raises:
        ImportError: The module or file cannot be found or imported (the message names it).
    """
    if is_file_spec(module_name):
        path = Path(module_name).expanduser().resolve()
        if not path.is_file():
            raise MissingDependencyError(f"no file {module_name!r} (from {os.getcwd()})")
        name = f"filterprune_user_{path.stem}_{abs(hash(str(path))):x}"
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise MissingDependencyError(f"{module_name!r} is not a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses and pickling look the module up by name
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        return module
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)  # like `python -c`, but installed packages keep priority
    return importlib.import_module(module_name)


def stable_spec(spec: str) -> str:
    """``spec`` as a later call from another folder finds it: a file path made absolute.

    ``mymodule:build`` found in the current folder becomes ``/abs/path/mymodule.py:build``; a
    module of an installed package stays as it is.
    """
    module_name, sep, attr = spec.rpartition(":")
    if not sep:
        return spec
    if is_file_spec(module_name):
        return f"{Path(module_name).expanduser().resolve()}:{attr}"
    module = sys.modules.get(module_name)
    origin = getattr(module, "__file__", None)
    if origin and Path(origin).resolve().parent == Path.cwd().resolve():
        return f"{Path(origin).resolve()}:{attr}"
    return spec
