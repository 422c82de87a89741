"""Tables, plots and a summary page for a run folder, built from its log with filterprune.report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .checkpoint import CheckpointError, RunDir
from .result import table_rows

__all__ = ["RunReport", "run_tables", "write_run_report"]

FORMATS = {"markdown": "md", "csv": "csv", "json": "json"}


@dataclass
class RunReport:
    """The tables of a run and the files written for it."""

    iterations: Any
    layers: Any
    files: list[Path] = field(default_factory=list)


def _final_row(run: RunDir, rows: list[dict[str, Any]]) -> dict[str, Any]:
    if run.exists():
        final = run.read_state()["final"]
        wanted: int | str = "final" if final == "final" else int(final.removeprefix("iter_"))
        for row in reversed(rows):
            if row["iteration"] == wanted:
                return row
    return next(r for r in reversed(rows) if r.get("accepted", True))


def run_tables(run_dir: str | Path) -> RunReport:
    """The per-iteration and per-layer tables of a run folder (from ``log.jsonl``)."""
    from ..report import iteration_table, layer_table

    run = RunDir(run_dir)
    rows = run.read_rows()
    if not rows:
        raise CheckpointError(
            f"{str(run.path)!r} is not a filterprune run folder (no log.jsonl rows); pass the "
            "--run-dir of a prune run"
        )
    final = _final_row(run, rows)
    layers = None
    if "channels" in rows[0] and "channels" in final:
        layers = layer_table(before=rows[0]["channels"], after=final["channels"])
    return RunReport(iterations=iteration_table(table_rows(rows)), layers=layers)


def write_run_report(
    run_dir: str | Path, *, out_dir: str | Path | None = None, plots: bool = True
) -> RunReport:
    """Write tables (Markdown, CSV, JSON), plots and ``summary.md``/``.html`` for a run.

    Args:
        run_dir: A run folder written by :func:`filterprune.loop.run_pruning`.
        out_dir: Where to write; defaults to ``run_dir/report``.
        plots: Draw figures (needs matplotlib): channels per layer, each metric vs. MACs and,
            if measured, latency vs. MACs.
    """
    from .. import report

    result = run_tables(run_dir)
    out = Path(out_dir) if out_dir is not None else Path(run_dir) / "report"
    out.mkdir(parents=True, exist_ok=True)
    render = {"markdown": report.to_markdown, "csv": report.to_csv, "json": report.to_json}
    for name, table in (("iterations", result.iterations), ("layers", result.layers)):
        if table is None:
            continue
        for fmt, suffix in FORMATS.items():
            path = out / f"{name}.{suffix}"
            path.write_text(render[fmt](table), encoding="utf-8")
            result.files.append(path)
    images: list[Any] = []
    if plots:
        rows = result.iterations.rows
        layers = result.layers
        if layers is not None:
            before = {r["layer"]: r["before"] for r in layers.rows}
            after = {r["layer"]: r["after"] for r in layers.rows}
            images.append(report.plot_channels(before, after, out / "channels"))
        metrics = [
            k.removeprefix("metric:") for k in result.iterations.keys if k.startswith("metric:")
        ]
        for metric in metrics:
            images.append(report.plot_metric_vs_macs(rows, metric, out / f"{metric}_vs_macs"))
        if any(r.get("latency_ms") is not None for r in rows):
            images.append(report.plot_latency_vs_macs(rows, out / "latency_vs_macs"))
    result.files += [p for pair in images for p in pair]
    result.files.append(
        report.write_summary(
            out, iteration_table=result.iterations, layer_table=result.layers, images=images
        )
    )
    return result
