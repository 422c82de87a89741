"""The import graph of ``src/filterprune`` has no cycle and no arrow pointing up a floor.

The floors are read from the table in ``docs/design.md`` ("Floors"), so the picture there is the
rule checked here. Every import counts: module level, inside functions, under ``TYPE_CHECKING``,
and ``importlib.import_module("filterprune....")`` with a literal name.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "filterprune"
DESIGN = ROOT / "docs" / "design.md"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _imports(source: str, name: str, is_package: bool, known: set[str]) -> set[str]:
    """The modules in ``known`` that module ``name``, whose text is ``source``, imports."""
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()

    def add(target: str, names: list[str]) -> None:
        for n in names:  # ``from pkg import sub`` imports the submodule ``pkg.sub``
            if f"{target}.{n}" in known:
                found.add(f"{target}.{n}")
            elif target in known:
                found.add(target)
        if not names and target in known:
            found.add(target)

    for node in ast.walk(ast.parse(source, name)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "filterprune" or target.startswith("filterprune."):
                add(target, [a.name for a in node.names])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("filterprune"):
                    add(alias.name, [])
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and str(node.args[0].value).startswith("filterprune")
        ):
            add(str(node.args[0].value), [])
    found.discard(name)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {
        name: _imports(path.read_text(), name, path.name == "__init__.py", known)
        for name, path in modules.items()
    }


def _unit(module: str) -> str:
    """The floor unit of a module: its top-level package or module below ``filterprune``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _floors() -> dict[str, int]:
    """``{unit: floor}`` from the table under "## Floors" in docs/design.md."""
    text = DESIGN.read_text()
    section = text.split("## Floors", 1)[1].split("\n## ", 1)[0]
    floors: dict[str, int] = {}
    for line in section.splitlines():
        row = re.match(r"\|\s*(\d+)\s*\|([^|]*)\|", line)
        if row:
            for unit in re.findall(r"`([\w]+)`", row.group(2)):
                assert unit not in floors, f"docs/design.md puts `{unit}` on two floors"
                floors[unit] = int(row.group(1))
    return floors


def test_every_package_has_a_floor():
    floors = _floors()
    missing = sorted({_unit(m) for m in _modules()} - set(floors))
    assert not missing, (
        f"{missing} have no floor: add them to the table under '## Floors' in docs/design.md"
    )


# Upward imports that a change in flight removes; nothing may be added here.
PENDING: set[tuple[str, str]] = set()


def test_no_import_points_up_or_sideways():
    floors = _floors()
    bad = []
    for module, targets in sorted(_graph().items()):
        here = _unit(module)
        for target in sorted(targets):
            there = _unit(target)
            if (module, target) in PENDING:
                continue
            if there != here and floors.get(there, 99) >= floors.get(here, -1):
                bad.append(
                    f"{module} (floor {floors.get(here)}) imports {target} "
                    f"(floor {floors.get(there)})"
                )
    assert not bad, "imports must point to a lower floor:\n" + "\n".join(bad)


def test_import_graph_has_no_cycle():
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []
    cycles: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for t in sorted(graph.get(m, ())):
            if state.get(t) == 1:
                cycles.append(" -> ".join([*path[path.index(t) :], t]))
            elif t not in state:
                visit(t)
        path.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from .tracer import Tracer", {"filterprune.graph.tracer"}),
        ("from . import labels as L", {"filterprune.graph.labels"}),
        ("from ..surgery import apply_plan", {"filterprune.surgery"}),
        ("def f():\n    from ..plan import Plan", {"filterprune.plan"}),
        ("if TYPE_CHECKING:\n    from ..api import prune", {"filterprune.api"}),
        ("importlib.import_module('filterprune.cli')", {"filterprune.cli"}),
        ("import torch\nfrom typing import Any", set()),
    ],
)
def test_the_checker_sees_every_kind_of_import(source, expected):
    known = {
        "filterprune.graph.rules",
        "filterprune.graph.tracer",
        "filterprune.graph.labels",
        "filterprune.surgery",
        "filterprune.plan",
        "filterprune.api",
        "filterprune.cli",
    }
    assert _imports(source, "filterprune.graph.rules", False, known) == expected
