"""The run report: tables, plots and a summary page for a run folder, built from its log.

From ``log.jsonl`` alone: the per-iteration, per-layer and latency tables, the channel, metric and
latency plots; from ``iter_NNN/scores.json``: the importance score distributions. The optional
deployment checks (ONNX with onnxruntime parity and latency, ``torch.export``, TorchScript of the
original and the final model) rebuild both models, so they need the model factory.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from .._atomic import atomic_write_text
from .tables import table_rows

__all__ = ["RunReport", "run_tables", "write_run_report"]

FORMATS = {"markdown": "md", "csv": "csv", "json": "json"}
MAX_SCORE_PANELS = 8


@dataclass
class RunReport:
    """The tables of a run and the files written for it (``None``: not available)."""

    iterations: Any
    layers: Any
    latency: Any = None
    deploy: Any = None
    files: list[Path] = field(default_factory=list)

    def tables(self) -> dict[str, Any]:
        """File stem -> table, for the tables that exist."""
        named = {
            "iterations": self.iterations,
            "layers": self.layers,
            "latency": self.latency,
            "deploy": self.deploy,
        }
        return {name: table for name, table in named.items() if table is not None}


def _run_dir(path: str | Path) -> Any:
    from ..loop.checkpoint import RunDir

    return RunDir(path)


def _final_row(run: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
    if run.exists():
        final = run.read_state()["final"]
        wanted: int | str = "final" if final == "final" else int(final.removeprefix("iter_"))
        for row in reversed(rows):
            if row["iteration"] == wanted:
                return row
    return next(r for r in reversed(rows) if r.get("accepted", True))


def run_tables(run_dir: str | Path) -> RunReport:
    """The per-iteration, per-layer and latency tables of a run folder (from ``log.jsonl``)."""
    from ..loop.checkpoint import CheckpointError
    from .latency_table import latency_table
    from .tables import iteration_table, layer_table

    run = _run_dir(run_dir)
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
    return RunReport(
        iterations=iteration_table(table_rows(rows)), layers=layers, latency=latency_table(rows)
    )


def run_scores(run_dir: str | Path) -> dict[int, dict[str, list[float]]]:
    """Iteration -> group name -> importance scores, for every iteration that saved them."""
    run = _run_dir(run_dir)
    out = {}
    for row in run.read_rows():
        iteration = row["iteration"]
        if isinstance(iteration, int) and iteration > 0:
            scores = run.read_scores(run.iteration_name(iteration))
            if scores:
                out[iteration] = scores
    return out


def _some(scores: dict[int, Any], limit: int) -> dict[int, Any]:
    """At most ``limit`` evenly spaced entries, always the first and the last."""
    keys = list(scores)
    if len(keys) <= limit:
        return scores
    picked = sorted({keys[round(i * (len(keys) - 1) / (limit - 1))] for i in range(limit)})
    return {k: scores[k] for k in picked}


def _deploy(
    run_dir: Path, out: Path, factory: Callable[[], nn.Module], example_inputs: Any, threads: Any
) -> Any:
    from .. import report
    from ..loop.load import load

    run = _run_dir(run_dir)
    checks = []
    for label, path, onnx_name in (
        ("original", run.checkpoint(run.iteration_name(0)), "original.onnx"),
        ("final", run_dir, "model.onnx"),
    ):
        model = load(path, factory)
        checks.append(
            report.check_deployment(
                model, example_inputs, label=label, onnx_path=out / onnx_name, threads=threads
            )
        )
    text = json.dumps([c.to_dict() for c in checks], indent=1, default=str)
    atomic_write_text(out / "deploy_checks.json", text + "\n")
    return report.deployment_table(checks)


def write_run_report(
    run_dir: str | Path,
    *,
    out_dir: str | Path | None = None,
    plots: bool = True,
    deploy: bool = False,
    model_factory: Callable[[], nn.Module] | None = None,
    example_inputs: Any = None,
    onnx_threads: int | None = None,
) -> RunReport:
    """Write tables (Markdown, CSV, JSON), plots and ``summary.md``/``.html`` for a run.

    Args:
        run_dir: A run folder written by :func:`filterprune.loop.run_pruning`.
        out_dir: Where to write; defaults to ``run_dir/report``.
        plots: Draw figures (needs matplotlib): channels per layer, each metric vs. MACs,
            latency vs. MACs (if measured) and the importance score distributions per layer
            (``scores.png``; at most 8 evenly spaced iterations).
        deploy: Rebuild the original and the final model and check them: ONNX export
            (``model.onnx`` / ``original.onnx``) with onnxruntime parity and CPU latency when
            onnxruntime is installed, ``torch.export`` and TorchScript. Writes the ``deploy``
            table and ``deploy_checks.json``; needs ``model_factory`` and ``example_inputs``.
        model_factory: Builds the original architecture (see :func:`filterprune.loop.load`).
        example_inputs: Input of the exported graphs, e.g. ``torch.randn(1, 3, 32, 32)``.
        onnx_threads: onnxruntime intra-op threads (``None``: ``torch.get_num_threads()``).
    """
    from .. import report

    if deploy and (model_factory is None or example_inputs is None):
        raise ValueError(
            "write_run_report(deploy=True) needs model_factory (builds the original model) and "
            "example_inputs (e.g. torch.randn(1, 3, 32, 32)); the CLI reads both from model.json"
        )
    result = run_tables(run_dir)
    out = Path(out_dir) if out_dir is not None else Path(run_dir) / "report"
    out.mkdir(parents=True, exist_ok=True)
    if deploy:
        result.deploy = _deploy(Path(run_dir), out, model_factory, example_inputs, onnx_threads)
        result.files += [out / "model.onnx", out / "original.onnx", out / "deploy_checks.json"]
    render = {"markdown": report.to_markdown, "csv": report.to_csv, "json": report.to_json}
    for name, table in result.tables().items():
        for fmt, suffix in FORMATS.items():
            path = out / f"{name}.{suffix}"
            atomic_write_text(path, render[fmt](table))
            result.files.append(path)
    images: list[Any] = []
    if plots:
        images = _plots(result, run_dir, out)
    result.files = [p for p in result.files if p.is_file()]
    result.files += [p for pair in images for p in pair]
    result.files.append(
        report.write_summary(
            out,
            iteration_table=result.iterations,
            layer_table=result.layers,
            tables=[result.latency, result.deploy],
            images=images,
        )
    )
    return result


def _plots(result: RunReport, run_dir: str | Path, out: Path) -> list[Any]:
    from .. import report

    images: list[Any] = []
    rows = result.iterations.rows
    layers = result.layers
    if layers is not None:
        before = {r["layer"]: r["before"] for r in layers.rows}
        after = {r["layer"]: r["after"] for r in layers.rows}
        images.append(report.plot_channels(before, after, out / "channels"))
    metrics = [k.removeprefix("metric:") for k in result.iterations.keys if k.startswith("metric:")]
    for metric in metrics:
        if any(r.get(f"metric:{metric}") is not None for r in rows):
            images.append(report.plot_metric_vs_macs(rows, metric, out / f"{metric}_vs_macs"))
    if any(r.get("latency_ms") is not None for r in rows):
        images.append(report.plot_latency_vs_macs(rows, out / "latency_vs_macs"))
    scores = run_scores(run_dir)
    if any(math.isfinite(v) for by_group in scores.values() for s in by_group.values() for v in s):
        images.append(
            report.plot_score_distributions(_some(scores, MAX_SCORE_PANELS), out / "scores")
        )
    return images
