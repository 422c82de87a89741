"""The run report: tables, plots and a summary page for a run folder, built from its log.

From ``log.jsonl`` alone: the per-iteration, per-layer and latency tables, the channel, metric and
latency plots; from ``iter_NNN/scores.json``: the importance score distributions. The optional
deployment checks (ONNX with onnxruntime parity and latency, ``torch.export``, TorchScript of the
original and the final model) rebuild both models, so they need the model factory.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from ..config import PruneConfig
from ..errors import CheckpointError, ConfigError
from ..store.files import atomic_write_text, is_leftover, remove_leftovers
from ..store.lock import LOCK_NAME, run_lock
from ..store.owned import check_owned, write_record
from ..store.rundir import row_key
from .deploy import check_deployment, deployment_table
from .formatting import plural
from .plots import (
    plot_channels,
    plot_latency_vs_macs,
    plot_metric_vs_macs,
    plot_run_overview,
    plot_score_distributions,
)
from .render import to_csv, to_json, to_markdown
from .summary import write_summary
from .tables import table_rows

__all__ = ["REPORT_RECORD", "RunReport", "run_settings", "run_tables", "write_run_report"]

logger = logging.getLogger("filterprune")

REPORT_RECORD = ".filterprune-report.json"  # which files of the report folder filterprune wrote

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
    from ..store.rundir import RunDir

    return RunDir(path)


def _final_row(run: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
    if run.exists():
        wanted = row_key(run.read_state()["final"])
        for row in reversed(rows):
            if row["iteration"] == wanted:
                return row
    return next(r for r in reversed(rows) if r.get("accepted", True))


def run_tables(run_dir: str | Path) -> RunReport:
    """The per-iteration, per-layer and latency tables of a run folder (from ``log.jsonl``)."""
    from .latency_table import latency_table
    from .tables import iteration_table, layer_table, retime_advice

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
        iterations=iteration_table(
            table_rows(rows),
            kept=final["iteration"],
            retime=retime_advice(  # the starting model is the run's first checkpoint
                str(run.path), str(run.checkpoint(run.iteration_name(0)))
            ),
        ),
        layers=layers,
        latency=latency_table(rows),
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
    from ..store.load import load

    run = _run_dir(run_dir)
    checks = []
    for label, path, onnx_name in (
        ("original", run.checkpoint(run.iteration_name(0)), "original.onnx"),
        ("final", run_dir, "model.onnx"),
    ):
        model = load(path, factory)
        checks.append(
            check_deployment(
                model, example_inputs, label=label, onnx_path=out / onnx_name, threads=threads
            )
        )
    text = json.dumps([c.to_dict() for c in checks], indent=1, default=str)
    atomic_write_text(out / "deploy_checks.json", text + "\n")
    return deployment_table(checks)


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
        plots: Draw figures (needs matplotlib): the run overview for a slide (``overview``:
            the first metric against MACs and against measured latency), channels per layer,
            each metric vs. MACs with the original's value and the allowed drop, latency vs.
            MACs with IQR bars and the original's level (if measured) and the importance score
            distributions per layer with each layer's removal cut-off (``scores.png``; at most
            8 evenly spaced iterations; not drawn for criteria without real scores, e.g.
            ``kmeans``).
        deploy: Rebuild the original and the final model and check them: ONNX export
            (``model.onnx`` / ``original.onnx``) with onnxruntime parity and CPU latency when
            onnxruntime is installed, ``torch.export`` and TorchScript. Writes the ``deploy``
            table and ``deploy_checks.json``; needs ``model_factory`` and ``example_inputs``.
        model_factory: Builds the original architecture (see :func:`filterprune.store.load`).
        example_inputs: Input of the exported graphs, e.g. ``torch.randn(1, 3, 32, 32)``.
        onnx_threads: onnxruntime intra-op threads (``None``: ``torch.get_num_threads()``).
    """

    if deploy and (model_factory is None or example_inputs is None):
        raise ConfigError(
            "write_run_report(deploy=True) needs model_factory (builds the original model) and "
            "example_inputs (e.g. torch.randn(1, 3, 32, 32)); the CLI reads both from model.json"
        )
    out = Path(out_dir) if out_dir is not None else Path(run_dir) / "report"
    from ..store.files import refuse_symlink

    refuse_symlink(out, option="--out")  # a planted link must not send the files elsewhere
    result = run_tables(run_dir)
    settings = run_settings(run_dir)
    # one report writes a folder at a time (the lock is released however the process ends, so
    # a folder marked "writing" that we can lock was left by a report that died)
    with run_lock(out, what="report folder", fix=_REPORT_FIX):
        _claim_report_folder(out)
        write_record(out, REPORT_RECORD, writing=True)  # a kill from here on leaves it marked
        return _write_report(result, settings, run_dir, out, plots, deploy, model_factory,
                             example_inputs, onnx_threads)  # fmt: skip


_REPORT_FIX = "wait for that report to finish, or write this one elsewhere with --out"


def _write_report(
    result: RunReport,
    settings: Any,
    run_dir: str | Path,
    out: Path,
    plots: bool,
    deploy: bool,
    model_factory: Callable[[], nn.Module] | None,
    example_inputs: Any,
    onnx_threads: int | None,
) -> RunReport:
    try:
        if deploy:
            result.deploy = _deploy(Path(run_dir), out, model_factory, example_inputs, onnx_threads)
            result.files += [out / "model.onnx", out / "original.onnx", out / "deploy_checks.json"]
        render = {"markdown": to_markdown, "csv": to_csv, "json": to_json}
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
        summary = write_summary(
            out,
            settings=settings,
            iteration_table=result.iterations,
            layer_table=result.layers,
            tables=[result.latency, result.deploy],
            images=images,
        )
        result.files += [summary, summary.with_suffix(".html")]  # the page beside summary.md
    finally:  # what is there now is ours: a later report may replace it
        write_record(out, REPORT_RECORD, writing=False)
    return result


def _claim_report_folder(out: Path) -> None:
    """Refuse ``out`` if it holds files no report of filterprune wrote (see ``check_owned``).

    A report killed while writing leaves its record marked ``writing`` (or, killed before
    the record was in place, nothing but temporaries): what it left is its own, so the
    temporaries are removed and the folder is taken over as it is.
    """
    record = out / REPORT_RECORD
    try:
        interrupted = record.is_file() and json.loads(record.read_text()).get("writing") is True
    except (OSError, ValueError, AttributeError):
        interrupted = False  # check_owned names the file
    if out.is_dir() and all(is_leftover(e.name) or e.name == LOCK_NAME for e in out.iterdir()):
        interrupted = True
    if interrupted:
        remove_leftovers(out)
        return
    check_owned(out, REPORT_RECORD, option="--out")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _criterion_has_scores(name: Any) -> bool:
    from ..criteria import get_criterion

    try:
        criterion = get_criterion(str(name))
    except Exception:  # an unknown or user criterion: draw what it saved
        return True
    return not getattr(criterion, "synthetic_scores", False)


def _text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value) or "–"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_text(v)}" for k, v in value.items()) or "–"
    return "–" if value is None or value == "" else str(value)


def _finetuning(config: PruneConfig, rows: list[dict[str, Any]], finished: bool) -> str:
    """What the run finetunes: the budgets with the loop's defaults filled in (marked), and no
    final finetuning when it has none (a per-iteration budget given without a final one, a
    final budget of 0) or when the finished run recorded none."""
    finetuning = config.finetuning
    per, final = config.budget(), config.budget(final=True)
    text = plural(per.amount, per.unit) if per.amount else "none"
    text += " (default)" if finetuning.per_iteration is None and per.amount else ""
    text += " per iteration, "
    ran = any(r.get("iteration") == "final" for r in rows)
    if not final.amount or (finished and not ran):
        why = ""
        if finetuning.final is None and finetuning.per_iteration is not None:
            why = " (only a per-iteration budget was given)"
        elif final.amount:
            why = " (the run recorded none)"
        return text + "no final finetuning" + why
    default = " (default)" if finetuning.final is None else ""
    return f"{text}{plural(final.amount, final.unit)}{default} final"


def _latency(config: PruneConfig, machine: dict[str, Any], kept: dict[str, Any] | None) -> str:
    """How the run timed its models and what the kept model measured; "not measured" only when
    the run timed nothing (no ``--latency``, no latency target, no timed row)."""
    timed = kept is not None and (kept.get("speedup"), kept.get("latency_ms")) != (None, None)
    if not config.needs_latency and not timed:
        return "not measured"
    latency = config.latency
    text = (
        f"batch {_text(list(latency.batch_sizes))}, "
        f"{plural(latency.rounds, 'alternating round')} beside the original, threads "
        f"{latency.threads or machine.get('torch_threads')}"
    )
    if not timed:
        return text
    measured = []
    if kept.get("latency_ms") is not None:
        measured.append(f"{kept['latency_ms']:.3g} ms")
    if kept.get("original_latency_ms") is not None:
        measured.append(f"original {kept['original_latency_ms']:.3g} ms")
    if kept.get("speedup") is not None and kept["iteration"] != 0:
        measured.append(f"speed-up {kept['speedup']:.2f}x")
    if kept.get("latency_flags"):
        measured.append(f"flagged {', '.join(kept['latency_flags'])}")
    return f"{text}; kept model (iteration {kept['iteration']}): {', '.join(measured)}"


def _config(run_dir: str | Path) -> PruneConfig | None:
    """The run's ``config.json`` as a :class:`PruneConfig` (any format it was written in);
    ``None`` when there is none, or (with a warning) when it cannot be read."""
    path = Path(run_dir) / "config.json"
    data = _read_json(path)
    if not data:
        return None
    try:
        return PruneConfig.from_dict(data, source=str(path))
    except ConfigError as exc:
        logger.warning("the report leaves out the run's settings: %s", exc)
        return None


def run_settings(run_dir: str | Path) -> Any:
    """The run's settings and machine as a two-column table (``None`` without a config)."""
    from .tables import Column, Table

    run = Path(run_dir)
    config = _config(run)
    if config is None:
        return None
    model = _read_json(run / "model.json")
    state = _read_json(run / "state.json")
    rows = _run_dir(run).read_rows()
    row0 = rows[0] if rows else {}
    try:
        kept = _final_row(_run_dir(run), rows) if rows else None
    except CheckpointError:  # a state.json that cannot be read: the tables name the problem
        kept = next((r for r in reversed(rows) if r.get("accepted", True)), None)
    machine = row0.get("machine") or {}
    bound = row0.get("metric_bound") or {}
    ranking, removal = config.ranking, config.removal
    drop = config.stopping.max_metric_drop
    options = ranking.options
    criterion = str(ranking.criterion) + (f" ({_text(options)})" if options else "")
    items = [
        ("model", _text(model.get("model") or "(Python API: not recorded)")),
        ("model arguments", _text(model.get("model_args"))),
        ("data", _text(model.get("data") or model.get("task"))),
        ("criterion", criterion),
        ("scope", _text(removal.scope)),
        ("amount / schedule", _text(list(removal.schedule or ()) or removal.amount)),
        ("FLOPs regularisation", f"λ = {ranking.flops_reg}, cost = {ranking.cost}"),
        ("targets", _text([str(t) for t in config.stopping.targets])),
        (
            "metric bound",
            "–"
            if not bound
            else f"{bound['metric']} ≥ {bound['value']:.4g}"
            + (f" (allowed drop {drop:g})" if drop is not None else ""),
        ),
        ("finetuning", _finetuning(config, rows, finished=state.get("finished") is True)),
        ("stop reason", _text(state.get("stop_reason"))),
        ("latency", _latency(config, machine, kept)),
        ("machine", f"{machine.get('cpu', '?')}, {plural(machine.get('cpu_count', '?'), 'logical core')}, "
         f"{plural(machine.get('torch_threads', '?'), 'torch thread')}, load at start "
         f"{_text(machine.get('loadavg'))}"),
        ("software", f"torch {machine.get('torch', '?')}, Python {machine.get('python', '?')}"),
    ]  # fmt: skip
    columns = [Column("setting", "Setting", "text"), Column("value", "Value", "text")]
    return Table("Run settings", columns, [{"setting": k, "value": v} for k, v in items])


def _cutoffs(run_dir: str | Path, scores: dict[int, Any]) -> dict[int, dict[str, float]]:
    """Iteration -> group -> the highest score removed there (from the step plan)."""
    run = _run_dir(run_dir)
    out: dict[int, dict[str, float]] = {}
    for iteration, by_group in scores.items():
        plan = _read_json(run.checkpoint(run.iteration_name(iteration)) / "step_plan.json")
        removed = plan.get("groups") or {}
        out[iteration] = {
            group: max(by_group[group][i] for i in indices)
            for group, indices in removed.items()
            if indices and group in by_group and max(indices) < len(by_group[group])
        }
    return out


def _plots(result: RunReport, run_dir: str | Path, out: Path) -> list[Any]:

    images: list[Any] = []
    rows = result.iterations.rows
    config = _config(run_dir)
    criterion = str(config.ranking.criterion) if config is not None else ""
    logged = _run_dir(run_dir).read_rows()
    bound = (logged[0].get("metric_bound") if logged else None) or {}
    metrics = [k.removeprefix("metric:") for k in result.iterations.keys if k.startswith("metric:")]
    metrics = [m for m in metrics if any(r.get(f"metric:{m}") is not None for r in rows)]
    if metrics:
        first = bound.get("metric") if bound.get("metric") in metrics else metrics[0]
        title = f"{criterion} pruning: {first} vs compute and latency"
        images.append(
            plot_run_overview(
                rows, first, out / "overview", threshold=bound.get("value"), title=title.strip()
            )
        )
    layers = result.layers
    if layers is not None:
        before = {r["layer"]: r["before"] for r in layers.rows}
        after = {r["layer"]: r["after"] for r in layers.rows}
        images.append(plot_channels(before, after, out / "channels"))
    for metric in metrics:
        threshold = bound.get("value") if bound.get("metric") == metric else None
        images.append(
            plot_metric_vs_macs(rows, metric, out / f"{metric}_vs_macs", threshold=threshold)
        )
    if any(r.get("latency_ms") is not None for r in rows):
        images.append(plot_latency_vs_macs(rows, out / "latency_vs_macs"))
    has_scores = _criterion_has_scores(criterion or None)
    scores = run_scores(run_dir) if has_scores else {}
    if any(math.isfinite(v) for by_group in scores.values() for s in by_group.values() for v in s):
        shown = _some(scores, MAX_SCORE_PANELS)
        images.append(
            plot_score_distributions(shown, out / "scores", cutoffs=_cutoffs(run_dir, shown))
        )
    return images
