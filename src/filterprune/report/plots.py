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
    "plot_run_overview",
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


def _label(iteration: Any) -> str:
    return "original" if iteration == 0 else str(iteration)


def _points(rows: Rows, y_of: Any, x_of: Any) -> list[tuple[float, float, Any, Mapping[str, Any]]]:
    return [
        (x_of(row), y_of(row), row.get("iteration"), row)
        for row in _rows(rows)
        if x_of(row) is not None and y_of(row) is not None
    ]


def _macs(row: Mapping[str, Any]) -> float | None:
    return row["macs"] / 1e6 if row.get("macs") is not None else None


def _annotate(ax: Any, points: Sequence[tuple[float, float, Any, Any]]) -> None:
    for x, y, iteration, _ in points:
        if iteration is not None:
            ax.annotate(
                _label(iteration), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8
            )


def _metric_panel(
    ax: Any, rows: Rows, metric: str, x_of: Any, threshold: float | None, *, xerr: Any = None
) -> list[Any]:
    points = _points(rows, lambda row: _metric(row, metric), x_of)
    if not points:
        return points
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    errors = [xerr(p[3]) or 0.0 for p in points] if xerr is not None else None
    ax.errorbar(xs, ys, xerr=errors, marker="o", capsize=3, label="iterations")
    ax.scatter(xs[:1], ys[:1], s=80, color="black", zorder=3, label="original")
    _annotate(ax, points)
    baseline = _metric(_rows(rows)[0], metric)
    if baseline is not None:
        ax.axhline(baseline, color="0.4", linewidth=1, label=f"original {metric}")
    if threshold is not None:
        ax.axhline(threshold, color="tab:red", linestyle="--", linewidth=1, label="allowed drop")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return points


def plot_metric_vs_macs(
    rows: Rows, metric: str, path: str | Path, *, threshold: float | None = None
) -> tuple[Path, Path]:
    """A task metric against MACs, one labelled point per iteration.

    The original's value is drawn as a horizontal line, and ``threshold`` (the worst value the
    run accepts: the original minus the allowed drop, or the floor) as a dashed red one.

    Args:
        rows: Iteration rows as passed to :func:`~filterprune.report.tables.iteration_table`
            (``metrics`` dict) or the table it returns (``metric:<name>`` columns); row 0 is
            the original.
        metric: Metric name, e.g. ``"dice"``.
        path: Output stem (or ``.png``/``.svg`` file name).
        threshold: The allowed-drop bound, if the run had one.
    """
    figure = _new_figure(6.0, 4.0)
    ax = figure.add_subplot()
    if not _metric_panel(ax, rows, metric, _macs, threshold):
        raise ConfigError(
            f"plot_metric_vs_macs (metric {metric!r}): no row has both 'macs' and the metric"
        )
    ax.set_xlabel("MMACs (millions of multiply-accumulates)")
    ax.set_title(f"{metric} vs MACs")
    return _save(figure, path)


def plot_latency_vs_macs(rows: Rows, path: str | Path) -> tuple[Path, Path]:
    """Measured latency against MACs, with IQR error bars and the original's level.

    Each iteration's latency was timed beside the original (``original_latency_ms``); the
    original's level is the median of those, drawn as a horizontal line, with its range.
    """
    points = _points(rows, lambda row: row.get("latency_ms"), _macs)
    if not points:
        raise ConfigError("plot_latency_vs_macs: no row has both 'macs' and 'latency_ms'")
    figure = _new_figure(6.0, 4.0)
    ax = figure.add_subplot()
    iqr = [(p[3].get("latency_iqr_ms") or 0.0) / 2 for p in points]
    ax.errorbar(
        [p[0] for p in points], [p[1] for p in points], yerr=iqr, marker="o", capsize=3,
        label="median, bars: IQR",
    )  # fmt: skip
    _annotate(ax, points)
    originals = [r["original_latency_ms"] for r in _rows(rows) if r.get("original_latency_ms")]
    if originals:
        level = sorted(originals)[len(originals) // 2]
        ax.axhline(level, color="0.4", linewidth=1, label="original (timed beside each)")
        ax.axhspan(min(originals), max(originals), color="0.4", alpha=0.12)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("MMACs (millions of multiply-accumulates)")
    ax.set_ylabel("latency (ms)")
    ax.set_title("Latency vs MACs")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(figure, path)


def plot_run_overview(
    rows: Rows,
    metric: str,
    path: str | Path,
    *,
    threshold: float | None = None,
    title: str = "Pruning run",
) -> tuple[Path, Path]:
    """One figure for a slide: the metric against MACs and against measured latency.

    Left: ``metric`` vs MMACs; right (when latency was measured): ``metric`` vs latency (ms,
    horizontal bars: IQR). The original and every iteration are labelled; the original's value
    and the allowed-drop ``threshold`` are drawn as lines.
    """
    timed = any(r.get("latency_ms") is not None for r in _rows(rows))
    figure = _new_figure(11.0 if timed else 6.0, 4.2)
    axes = figure.subplots(1, 2 if timed else 1, squeeze=False)[0]
    if not _metric_panel(axes[0], rows, metric, _macs, threshold):
        raise ConfigError(f"plot_run_overview: no row has both 'macs' and metric {metric!r}")
    axes[0].set_xlabel("MMACs")
    axes[0].set_title(f"{metric} vs compute")
    if timed:
        _metric_panel(
            axes[1], rows, metric, lambda r: r.get("latency_ms"), threshold,
            xerr=lambda r: (r.get("latency_iqr_ms") or 0.0) / 2,
        )  # fmt: skip
        axes[1].set_xlabel("latency (ms, measured)")
        axes[1].set_title(f"{metric} vs measured latency")
    figure.suptitle(title)
    return _save(figure, path)


def _as_floats(scores: torch.Tensor | Sequence[float]) -> list[float]:
    values = torch.as_tensor(scores).detach().to("cpu", torch.float64).flatten()
    return [v for v in values.tolist() if math.isfinite(v)]


def plot_score_distributions(
    scores_by_iteration: Mapping[int, Mapping[str, torch.Tensor | Sequence[float]]],
    path: str | Path,
    *,
    cutoffs: Mapping[int, Mapping[str, float]] | None = None,
) -> tuple[Path, Path]:
    """Box plots of importance scores per layer, one panel per iteration.

    Args:
        scores_by_iteration: Iteration -> layer name -> scores (a 1-D tensor or list, one score
            per channel). Non-finite scores are dropped.
        path: Output stem (or ``.png``/``.svg`` file name).
        cutoffs: Iteration -> layer -> the highest score removed there; drawn as a red mark
            over the layer's box (every channel at or below it in that layer was removed).
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
        cut = (cutoffs or {}).get(iteration) or {}
        marks = [(layers.index(k), v) for k, v in cut.items() if k in layers and math.isfinite(v)]
        if marks:
            ax.hlines(
                [v for _, v in marks], [i - 0.4 for i, _ in marks], [i + 0.4 for i, _ in marks],
                colors="tab:red", linewidth=2, label="removal cut-off",
            )  # fmt: skip
            ax.legend(fontsize=7, loc="upper right")
        ax.set_ylabel("score")
        ax.set_title(f"Iteration {iteration}", fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    axes[-1].set_xticks(range(len(layers)), layers, rotation=60, ha="right", fontsize=7)
    axes[-1].set_xlim(-0.7, len(layers) - 0.3)
    figure.suptitle("Importance scores per layer (red: highest score removed)")
    return _save(figure, path)
