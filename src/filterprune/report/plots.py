"""Figures of a pruning run, drawn with matplotlib's Agg canvas (no display, no pyplot state).

Every function writes ``<stem>.png`` and ``<stem>.svg`` and returns both paths. ``path`` may be
the stem or a file name ending in ``.png``/``.svg`` (the suffix is replaced). matplotlib is an
optional extra: ``pip install filterprune[report]``.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from filterprune.report.tables import Table
from filterprune.store.files import atomic_write_bytes

from ..errors import ConfigError, MissingDependencyError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "plot_channels",
    "plot_latency_vs_macs",
    "plot_metric_vs_macs",
    "plot_score_distributions",
]

_IMAGE_SUFFIXES = {".png", ".svg"}
Rows = Sequence[Mapping[str, Any]] | Table


def _new_figure(width: float, height: float) -> Figure:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise MissingDependencyError(
            "plots need matplotlib: pip install filterprune[report]"
        ) from err
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: str | Path) -> tuple[Path, Path]:
    path = Path(path)
    stem = path.with_suffix("") if path.suffix.lower() in _IMAGE_SUFFIXES else path
    stem.parent.mkdir(parents=True, exist_ok=True)
    png, svg = stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".svg")
    for target, options in ((png, {"dpi": 150}), (svg, {})):  # atomically: no half images
        buffer = io.BytesIO()
        figure.savefig(buffer, format=target.suffix[1:], **options)
        atomic_write_bytes(target, buffer.getvalue())
    return png, svg


def plot_channels(
    before: Mapping[str, int], after: Mapping[str, int], path: str | Path
) -> tuple[Path, Path]:
    """Bar chart of output channels per layer before and after pruning.

    Args:
        before: Layer name -> channels of the original model.
        after: Layer name -> channels after pruning (layers missing here are drawn as 0).
        path: Output stem (or ``.png``/``.svg`` file name).

    Returns:
        ``(png_path, svg_path)``.
    """
    names = list(before)
    if not names:
        raise ConfigError("plot_channels: before is empty; nothing to plot")
    figure = _new_figure(max(6.0, 0.35 * len(names) + 2), 4.0)
    ax = figure.add_subplot()
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], [before[n] for n in names], 0.4, label="before", color="0.7")
    ax.bar([x + 0.2 for x in xs], [after.get(n, 0) for n in names], 0.4, label="after")
    ax.set_xticks(list(xs), names, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("output channels")
    ax.set_title("Channels per layer")
    ax.legend()
    return _save(figure, path)


def _rows(rows: Rows) -> list[Mapping[str, Any]]:
    return list(rows.rows) if isinstance(rows, Table) else list(rows)


def _metric(row: Mapping[str, Any], metric: str) -> Any:
    metrics = row.get("metrics")
    if isinstance(metrics, Mapping) and metric in metrics:
        return metrics[metric]
    return row.get(f"metric:{metric}")


def _xy_plot(
    rows: Rows, y_of: Any, *, y_label: str, title: str, what: str, path: str | Path
) -> tuple[Path, Path]:
    points = [
        (row["macs"] / 1e6, y_of(row), row.get("iteration"))
        for row in _rows(rows)
        if row.get("macs") is not None and y_of(row) is not None
    ]
    if not points:
        raise ConfigError(f"{what}: no row has both 'macs' and the plotted value")
    figure = _new_figure(6.0, 4.0)
    ax = figure.add_subplot()
    ax.plot([p[0] for p in points], [p[1] for p in points], marker="o")
    for x, y, iteration in points:
        if iteration is not None:
            ax.annotate(str(iteration), (x, y), textcoords="offset points", xytext=(4, 4))
    ax.set_xlabel("MMACs (millions of multiply-accumulates)")
    ax.set_ylabel(y_label)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return _save(figure, path)


def plot_metric_vs_macs(rows: Rows, metric: str, path: str | Path) -> tuple[Path, Path]:
    """Line plot of a task metric against MACs, one point per iteration (labelled).

    Args:
        rows: Iteration rows as passed to :func:`~filterprune.report.tables.iteration_table`
            (``metrics`` dict) or the table it returns (``metric:<name>`` columns).
        metric: Metric name, e.g. ``"dice"``.
        path: Output stem (or ``.png``/``.svg`` file name).
    """
    return _xy_plot(
        rows,
        lambda row: _metric(row, metric),
        y_label=metric,
        title=f"{metric} vs MACs",
        what=f"plot_metric_vs_macs (metric {metric!r})",
        path=path,
    )


def plot_latency_vs_macs(rows: Rows, path: str | Path) -> tuple[Path, Path]:
    """Line plot of ``latency_ms`` against MACs, one point per iteration (labelled)."""
    return _xy_plot(
        rows,
        lambda row: row.get("latency_ms"),
        y_label="latency (ms)",
        title="Latency vs MACs",
        what="plot_latency_vs_macs",
        path=path,
    )


def _as_floats(scores: torch.Tensor | Sequence[float]) -> list[float]:
    values = torch.as_tensor(scores).detach().to("cpu", torch.float64).flatten()
    return [v for v in values.tolist() if math.isfinite(v)]


def plot_score_distributions(
    scores_by_iteration: Mapping[int, Mapping[str, torch.Tensor | Sequence[float]]],
    path: str | Path,
) -> tuple[Path, Path]:
    """Box plots of importance scores per layer, one panel per iteration.

    Args:
        scores_by_iteration: Iteration -> layer name -> scores (a 1-D tensor or list, one score
            per channel). Non-finite scores are dropped.
        path: Output stem (or ``.png``/``.svg`` file name).
    """
    if not scores_by_iteration:
        raise ConfigError("plot_score_distributions: scores_by_iteration is empty")
    layers: list[str] = []
    for by_layer in scores_by_iteration.values():
        layers += [name for name in by_layer if name not in layers]
    n = len(scores_by_iteration)
    figure = _new_figure(max(6.0, 0.35 * len(layers) + 2), 2.6 * n + 1)
    axes = figure.subplots(n, 1, squeeze=False, sharex=True)[:, 0]
    for ax, (iteration, by_layer) in zip(axes, scores_by_iteration.items(), strict=True):
        data = [
            (i, _as_floats(by_layer[name])) for i, name in enumerate(layers) if name in by_layer
        ]
        data = [(i, values) for i, values in data if values]
        if data:
            ax.boxplot([v for _, v in data], positions=[i for i, _ in data], widths=0.6)
        ax.set_ylabel("score")
        ax.set_title(f"Iteration {iteration}", fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    axes[-1].set_xticks(range(len(layers)), layers, rotation=60, ha="right", fontsize=7)
    axes[-1].set_xlim(-0.7, len(layers) - 0.3)
    figure.suptitle("Importance scores per layer")
    return _save(figure, path)
