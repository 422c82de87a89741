"""Render benchmark JSON results (``benchmarks/results/*.json``) as Markdown tables.

It measures nothing: it reads what ``bench_core.py`` wrote and prints the tables that
``docs/benchmarks.md`` shows, so the doc can be regenerated after a new run::

    .venv/bin/python benchmarks/render.py benchmarks/results/core.json          # print
    .venv/bin/python benchmarks/render.py benchmarks/results/core.json \\
        --write docs/benchmarks.md                                               # update doc

``--write`` replaces only the text between ``<!-- core:begin -->`` and ``<!-- core:end -->`` in
the target file (the generated part of the "Core" section); everything else is left alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

BEGIN = "<!-- {name}:begin -->"
END = "<!-- {name}:end -->"


def table(header: list[str], rows: list[list[str]], *, numeric: bool = True) -> str:
    """A Markdown table; with ``numeric`` every column but the first is right-aligned."""
    rest = "---:" if numeric else ":---"
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join([":---"] + [rest] * (len(header) - 1)) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def sec(stat: dict[str, Any] | None) -> str:
    """``median (min-max)`` seconds."""
    if not stat:
        return "-"
    return f"{stat['median']:.2f} ({stat['min']:.2f}-{stat['max']:.2f})"


def med(stat: dict[str, Any] | None) -> str:
    return "-" if not stat else f"{stat['median']:.2f}"


def times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def millions(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.2f} M"


def giga(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e9:.3f} G"


def all_foreign(result: dict[str, Any]) -> list[float | None]:
    """Per-run 'cores used by other processes' of every measurement in ``result``."""
    seen: list[float | None] = []
    for entry in result["head_to_head"].values():
        for lib in ("filterprune", "torch_pruning"):
            seen += (entry.get(lib) or {}).get("foreign_cores", [])
    names = {(n, result["settings"]["width"]) for n in result["head_to_head"]}
    for row in result["scaling_depth"] + result["scaling_width"]:
        key = (row["model"], row["width"])
        if key not in names:  # head-to-head settings are reused by the sweeps
            names.add(key)
            seen += row.get("foreign_cores", [])
    return seen


def render_machine(result: dict[str, Any]) -> str:
    m, s = result["machine"], result["settings"]
    foreign = [c for c in all_foreign(result) if c is not None]
    threshold = s.get("quiet_threshold_cores", 0.25)
    cpu = m.get("cpu") or m["cpu_model"]  # "cpu_model" in results written before 0.2
    rows = [
        ["CPU", f"{cpu} ({m['cpus_usable']} usable cores)"],
        ["torch threads", f"{m['torch_threads']} (interop {m['torch_interop_threads']})"],
        ["torch / Torch-Pruning", f"{m['torch']} / {m['torch_pruning']}"],
        [
            "filterprune",
            f"{m['filterprune']} (commit {m['git_commit']}"
            + (", with uncommitted changes under src/" if m.get("src_modified") else "")
            + ")",
        ],
        ["Python / OS", f"{m['python']} / {m['platform']}"],
        ["input", "x".join(str(d) for d in s["input"])],
        [
            "runs per setting",
            f"{s['runs']} head to head, {s.get('sweep_runs', s['runs'])} in the sweeps "
            "(median, min-max); every timed call on a fresh model",
        ],
        [
            "whole run",
            f"{result['elapsed_measuring_s']:.0f} s measuring (+ "
            f"{result['waited_for_quiet_s']:.0f} s waiting for other processes to idle), "
            f"peak RSS {result['peak_rss_mib']:.0f} MiB",
        ],
    ]
    if foreign:
        busy = sum(c >= threshold for c in foreign)
        rows.append(
            [
                "other processes during timed runs",
                f"median {sorted(foreign)[len(foreign) // 2]:.2f} cores, max {max(foreign):.2f}; "
                f"{busy} of {len(foreign)} runs at >= {threshold:g} cores",
            ]
        )
    return table(["", "value"], rows, numeric=False)


def render_head_to_head(result: dict[str, Any]) -> str:
    head = result["head_to_head"]
    pct = f"{result['settings']['amount']:.0%}"
    time_rows = []
    ratio_rows = []
    size_rows = []
    for name, entry in head.items():
        f = entry["filterprune"]
        t = entry.get("torch_pruning")
        c = entry.get("comparison") or {}
        time_rows.append(
            [
                f"{name} filterprune",
                sec(f["build_noprobe_s"]),
                sec(f["build_s"]),
                sec(f["prune_s"]),
                sec(f["total_s"]),
            ]
        )
        if t:
            time_rows.append(
                [
                    f"{name} Torch-Pruning",
                    "-",
                    sec(t["build_s"]),
                    sec(t["prune_s"]),
                    sec(t["total_s"]),
                ]
            )
            ratio_rows.append(
                [
                    name,
                    times(c.get("ratio_build")),
                    times(c.get("ratio_build_noprobe")),
                    times(c.get("ratio_prune")),
                    times(c.get("ratio_total")),
                    times(c.get("ratio_total_noprobe")),
                ]
            )
        size_rows.append(
            [
                name,
                f"{millions(f['dense'].get('params'))} / {giga(f['dense'].get('macs'))}",
                f"{millions(f['pruned'].get('params'))} / {giga(f['pruned'].get('macs'))}",
                f"{millions(t['pruned'].get('params'))} / {giga(t['pruned'].get('macs'))}"
                if t
                else "-",
                ("yes" if c.get("same_architecture") else f"no: {c.get('differing_modules')}")
                if t
                else "-",
                "yes"
                if f["forward"].get("finite") and (not t or t["forward"].get("finite"))
                else "NO",
            ]
        )
    parts = [
        "Seconds, median (min-max). filterprune build = `fp.analyze` (trace, dependency graph, "
        "probe); prune = `fp.prune(..., graph=graph)`; total = build + prune. Torch-Pruning "
        "build = `MagnitudePruner(...)` construction; prune = `pruner.step()`.",
        "",
        table(
            ["", "build, no probe", "build (default)", "prune", "total (default)"],
            time_rows,
        ),
    ]
    forwards = [
        f"{name} {entry['filterprune']['dense_forward_s']:.2f} s"
        for name, entry in head.items()
        if entry["filterprune"].get("dense_forward_s") is not None
    ]
    if forwards:
        parts += [
            "",
            "For scale, one plain no-grad forward pass of the dense model (fastest of 3): "
            + ", ".join(forwards)
            + ".",
        ]
    if ratio_rows:
        parts += [
            "",
            "Speed-up of filterprune = Torch-Pruning time / filterprune time (medians; above 1x "
            "filterprune is faster).",
            "",
            table(
                [
                    "model",
                    "build",
                    "build (fp no probe)",
                    "prune",
                    "total",
                    "total (fp no probe)",
                ],
                ratio_rows,
            ),
        ]
    parts += [
        "",
        f"Parameters / MACs (`fp.count`, batch 1) before and after {pct} removal, and whether both "
        "libraries produce the same layer shapes.",
        "",
        table(
            ["model", "dense", "filterprune", "Torch-Pruning", "same shapes", "both run"],
            size_rows,
        ),
    ]
    return "\n".join(parts)


def render_scaling(rows: list[dict[str, Any]], key: str) -> str:
    body = [
        [
            row["model"] if key == "model" else f"resnet50 x{row['width']:g}",
            str(row["ops"]),
            f"{row['groups']} ({row['prunable_groups']})",
            sec(row["build_noprobe_s"]),
            sec(row["build_s"]),
            sec(row["prune_s"]),
            sec(row["total_s"]),
        ]
        for row in rows
    ]
    return table(
        [
            "model",
            "traced ops",
            "groups (prunable)",
            "build, no probe",
            "build (default)",
            "prune",
            "build + prune",
        ],
        body,
    )


def render_core(result: dict[str, Any]) -> str:
    s = result["settings"]
    size = "x".join(str(d) for d in s["input"][2:])
    pct = f"{s['amount']:.0%}"
    return "\n".join(
        [
            "**Machine**",
            "",
            render_machine(result),
            "",
            f"**Head to head: {pct} L1 filter removal at {size}, batch-1 example, "
            f"width {s['width']:g}**",
            "",
            render_head_to_head(result),
            "",
            f"**Scaling with depth** (width {s['width']:g}, {size}; seconds, median (min-max))",
            "",
            render_scaling(result["scaling_depth"], "model"),
            "",
            f"**Scaling with width** (ResNet-50, {size}; seconds, median (min-max))",
            "",
            render_scaling(result["scaling_width"], "width"),
        ]
    )


def write_section(path: Path, name: str, text: str) -> None:
    """Replace the text between the ``name`` markers of ``path`` with ``text``."""
    begin, end = BEGIN.format(name=name), END.format(name=name)
    doc = path.read_text()
    if begin not in doc or end not in doc:
        raise SystemExit(f"{path}: markers {begin} / {end} not found")
    head, rest = doc.split(begin, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{begin}\n{text}\n{end}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("result", type=Path, help="JSON written by bench_core.py")
    parser.add_argument("--write", type=Path, help="update the marked section of this file")
    args = parser.parse_args(argv)
    result = json.loads(args.result.read_text())
    if result.get("benchmark") != "core":
        raise SystemExit(f"{args.result}: not a core benchmark result")
    text = render_core(result)
    if args.write:
        write_section(args.write, "core", text)
        print(f"updated {args.write}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
