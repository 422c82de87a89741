"""The keyword arguments a built-in model takes: name, default and meaning, from its own code.

Read from the model class's signature and the ``Args:`` section of its docstring, so the list
never drifts from the code; arguments the registered factory fixes itself (``batch_norm`` of
``vgg16_bn``) are left out.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
import typing
from dataclasses import dataclass
from typing import Any

from .registry import _MODELS, create_model, list_models

__all__ = ["ModelArgument", "model_arguments"]


@dataclass(frozen=True)
class ModelArgument:
    """One keyword argument of a built-in model (``--model-arg NAME=VALUE``)."""

    name: str
    default: Any
    meaning: str

    def __str__(self) -> str:
        return f"{self.name}={self.default!r}: {self.meaning}" if self.meaning else self.name


def _docstring_args(cls: type) -> dict[str, str]:
    """``{name: meaning}`` from the ``Args:`` section of a Google-style docstring."""
    doc = inspect.getdoc(cls) or ""
    match = re.search(r"^Args:\n((?:[ \t]+.*\n?|\n)+)", doc, re.M)
    if not match:
        return {}
    out: dict[str, str] = {}
    current = None
    for line in match.group(1).splitlines():
        entry = re.match(r"^ {4}(\w+)(?: \([^)]*\))?: (.*)$", line)
        if entry:
            current = entry.group(1)
            out[current] = entry.group(2).strip()
        elif current and line.startswith("      "):
            out[current] += " " + line.strip()
    return {k: " ".join(v.split()) for k, v in out.items()}


def model_arguments(name: str) -> list[ModelArgument]:
    """The keyword arguments of the built-in model ``name`` (see :func:`list_models`).

    Raises:
        UnknownModelError: ``name`` is not a built-in model.
    """
    if name not in list_models():
        create_model(name)  # raises UnknownModelError with the list of names
    factory = _MODELS.get(name)
    cls = typing.get_type_hints(factory).get("return")
    if not isinstance(cls, type):
        return []
    params = list(inspect.signature(cls).parameters.values())
    positional, fixed = _bound_by(factory, cls.__name__)
    meanings = _docstring_args(cls)
    return [
        ModelArgument(p.name, p.default, meanings.get(p.name, ""))
        for p in params[positional:]
        if p.default is not inspect.Parameter.empty and p.name not in fixed
    ]


def _bound_by(factory: Any, class_name: str) -> tuple[int, set[str]]:
    """How many positional and which keyword arguments the factory passes to ``class_name``."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(factory)))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == class_name:
            return len(node.args), {k.arg for k in node.keywords if k.arg is not None}
    return 0, set()
