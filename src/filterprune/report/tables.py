"""Report tables built from plain data: one row per pruning iteration, one row per layer.

A :class:`Table` keeps raw numbers (``int``/``float``/``str``/``None``); the renderers in
:mod:`filterprune.report.render` format them. Reductions and metric changes are relative to
row 0, the original model. The per-layer table counts each channel once: its rows are the
producers of channel groups (:func:`filterprune.loop.channel_groups`): the layers making new
channels, joined when a residual add ties them; a depthwise conv, a BatchNorm or the consumers
of a concatenation are not producers. Its total removed equals the iteration table's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any

from filterprune.report.formatting import KINDS, format_value, metric_kinds, plural

from ..errors import ConfigError, UnknownNameError

__all__ = [
    "ITERATION_KEYS",
    "REFERENCE",
    "Column",
    "Table",
    "iteration_table",
    "kept_index",
    "layer_table",
    "table_rows",
]

#: The speed-up cell of the original model (row 0 of the iteration table, iteration 0 of the
#: latency table): the reference every speed-up is measured against, not a measurement.
REFERENCE = "reference"


@dataclass(frozen=True)
class Column:
    """One table column.

    Attributes:
        key: Machine name; the key in each row dict and the CSV/JSON field name.
        header: Human header for Markdown/HTML.
        kind: How renderers format values, one of ``KINDS``: ``count`` prints K/M/G, ``mb`` two
            decimals, ``percent`` one decimal, ``speedup`` a trailing "x", ``delta`` a sign.
    """

    key: str
    header: str
    kind: str = "text"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"Column {self.key!r}: unknown kind {self.kind!r}; known: {KINDS}")


@dataclass
class Table:
    """A titled table of raw values.

    Attributes:
        title: Caption, used as a section heading in summaries.
        columns: Column definitions, in display order.
        rows: One dict per row mapping column keys to raw values (``None`` = not available).
        notes: Sentences shown under the table (e.g. the overall size reduction).
    """

    title: str
    columns: list[Column]
    rows: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)

    def column(self, key: str) -> list[Any]:
        """All values of the column ``key``."""
        if key not in {c.key for c in self.columns}:
            raise UnknownNameError(
                f"table {self.title!r} has no column {key!r}; columns: {self.keys}"
            )
        return [row.get(key) for row in self.rows]

    @property
    def keys(self) -> list[str]:
        """Column keys in display order."""
        return [c.key for c in self.columns]

    def with_values(self) -> Table:
        """This table without its all-empty columns (every value ``None``), for people to read.

        The Markdown, HTML and terminal views show this; CSV and JSON keep every column, so a
        program reading them finds the same fields in every run. A table without rows is
        returned as it is.
        """
        if not self.rows:
            return self
        columns = [c for c in self.columns if any(r.get(c.key) is not None for r in self.rows)]
        if len(columns) == len(self.columns):
            return self
        keys = [c.key for c in columns]
        rows = [{k: row.get(k) for k in keys} for row in self.rows]
        return Table(self.title, columns, rows, list(self.notes))


# The keys of an iteration row that the table reads; the pruning loop's rows hold a few more
# (pruned_fraction, amount, scope, channels, latency, seconds, recovery) that only the
# run log keeps.
ITERATION_KEYS = (
    "iteration",
    "accepted",
    "ranking_batches",
    "ranking_batches_asked",
    "removed",
    "removed_total",
    "finetune",
    "metrics",
    "params",
    "macs",
    "size_mb",
    "latency_ms",
    "latency_iqr_ms",
    "original_latency_ms",
    "speedup",
    "speedup_low",
    "speedup_high",
    "latency_flags",
    "table_speedup",
    "floor_speedup",
    "latency_decided_by",
)


def table_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows reduced to the keys :func:`iteration_table` accepts (``ITERATION_KEYS``)."""
    return [{k: row[k] for k in ITERATION_KEYS if k in row} for row in rows]


def _plain(value: Any) -> Any:
    """Numpy/torch scalars -> Python numbers, so tables serialise to JSON."""
    item = getattr(value, "item", None)
    return item() if callable(item) and getattr(value, "ndim", 0) == 0 else value


def _plain_row(row: Mapping[str, Any]) -> dict[str, Any]:
    out = {key: _plain(value) for key, value in row.items()}
    if isinstance(out.get("metrics"), Mapping):
        out["metrics"] = {name: _plain(value) for name, value in out["metrics"].items()}
    return out


def _reduction_pct(first: Any, value: Any) -> float | None:
    if first is None or value is None or first == 0:
        return None
    return (first - value) / first * 100.0


def _check_iteration_row(index: int, row: Mapping[str, Any]) -> None:
    unknown = sorted(set(row) - set(ITERATION_KEYS))
    if unknown:
        raise ConfigError(
            f"iteration_table: row {index} has unknown keys {unknown}; known keys: "
            f"{list(ITERATION_KEYS)}"
        )
    if "iteration" not in row:
        raise ConfigError(f"iteration_table: row {index} has no 'iteration' key")
    if row.get("accepted") is not None and not isinstance(row["accepted"], bool):
        raise ConfigError(
            f"iteration_table: row {index} 'accepted' must be true or false, got "
            f"{row['accepted']!r}"
        )
    metrics = row.get("metrics")
    if metrics is not None and not isinstance(metrics, Mapping):
        raise TypeError(
            f"iteration_table: row {index} 'metrics' must be a dict name -> value, "
            f"got {type(metrics).__name__}"
        )
    for name, value in (metrics or {}).items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, Real)):
            raise TypeError(
                f"iteration_table: row {index} metric {name!r} must be a number or "
                f"None, got {value!r}"
            )
    for key in (
        "params",
        "macs",
        "size_mb",
        "latency_ms",
        "latency_iqr_ms",
        "original_latency_ms",
        "speedup",
        "speedup_low",
        "speedup_high",
        "table_speedup",
        "floor_speedup",
    ):
        value = row.get(key)
        if value is not None and (not isinstance(value, Real) or value < 0):
            raise ConfigError(
                f"iteration_table: row {index} {key!r} must be a number >= 0 or None, got {value!r}"
            )


def kept_index(rows: Sequence[Mapping[str, Any]], kept: int | str | None = None) -> int:
    """Index of the row describing the model a run keeps.

    Args:
        rows: Iteration rows; a rejected one has ``accepted=False`` (a missing ``accepted``
            counts as accepted).
        kept: The ``iteration`` of the kept row (e.g. from the run's ``state.json``); the last
            row with that ``iteration`` is taken. ``None``: the last accepted row (the
            ``"final"`` row after a final finetuning).
    """
    for index in range(len(rows) - 1, -1, -1):
        row = rows[index]
        if (row.get("iteration") == kept) if kept is not None else row.get("accepted", True):
            return index
    if kept is not None:
        raise ConfigError(
            f"iteration_table: kept={kept!r} names no row; iterations: "
            f"{[r.get('iteration') for r in rows]}"
        )
    return 0


#: What a flagged speed-up's note advises, where the table does not know the paths
RETIME = (
    "time the model again beside the original on an idle machine "
    "(filterprune eval --load RUN --compare ORIGINAL --latency)"
)


def retime_advice(run: str, original: str) -> str:
    """:data:`RETIME` with the paths filled in."""
    return RETIME.replace("RUN", run, 1).replace("ORIGINAL", original, 1)


def iteration_table(
    rows: Sequence[Mapping[str, Any]],
    *,
    kept: int | str | None = None,
    retime: str = RETIME,
) -> Table:
    """Build the per-iteration table; row 0 must be the original (unpruned) model.

    Args:
        rows: One dict per iteration with keys from ``ITERATION_KEYS``; every key but
            ``iteration`` is optional (missing = N/A). ``metrics`` maps a metric name to its
            value; ``size_mb`` is in MB (10**6 bytes), ``latency_ms`` (median) and
            ``latency_iqr_ms`` (its interquartile range) in milliseconds, ``finetune`` is free
            text or a number (e.g. ``"0/1500"`` epochs/iterations). ``speedup`` (with
            ``speedup_low``/``speedup_high``, ``original_latency_ms`` and ``latency_flags``)
            comes from :func:`filterprune.measure.compare_latency`, which timed the original
            beside this model; the table never divides latencies of different rows.
            ``accepted=False`` marks an iteration the run rejected and went back from.
        kept: The ``iteration`` of the row describing the model the run keeps (see
            :func:`kept_index`); ``None``: the last accepted row.
        retime: What the note on a flagged speed-up advises (default :data:`RETIME`; a run's
            report fills in its paths with :func:`retime_advice`, ``eval`` names itself).

    Returns:
        A table with the given columns (metrics flattened to ``metric:<name>``) plus the
        computed ``params_reduction_pct``, ``macs_reduction_pct``, ``size_reduction_pct``
        (``(first - value) / first * 100``) and ``delta:<name>`` (``value - first``) columns.
        Row 0's ``speedup`` is the text ``"reference"`` when any row has a speed-up (its A/A
        figure, the original against its own copy, goes into the notes as the noise floor).
        ``speedup_range`` is the text ``low–high`` of the round ratios, ``latency_flags`` the
        flags joined by commas; ``efficiency`` is ``speedup / (macs[0] / macs)``, the share of
        the MAC reduction that became speed (1.0 = latency fell as much as MACs did).
        ``status`` is ``"rejected"`` on rejected rows, ``"kept"`` on the kept row and
        ``"accepted"`` on the others when any row was rejected (else ``None`` throughout, and
        the views leave the column out). The
        notes (reductions, speed-up, metric changes, the lookup table's prediction) describe
        the kept row, never a rejected one.
    """
    if not rows:
        raise ConfigError("iteration_table: rows is empty; pass at least the original model's row")
    rows = [_plain_row(row) for row in rows]
    for index, row in enumerate(rows):
        _check_iteration_row(index, row)

    metric_names: list[str] = []
    for row in rows:
        for name in row.get("metrics") or {}:
            if name not in metric_names:
                metric_names.append(name)

    first = rows[0]
    first_metrics = first.get("metrics") or {}
    keep = kept_index(rows, kept)
    rejected = [i for i, row in enumerate(rows) if row.get("accepted") is False]
    out_rows = []
    for index, row in enumerate(rows):
        metrics = row.get("metrics") or {}
        out: dict[str, Any] = {"iteration": row.get("iteration"), "status": None}
        if rejected:
            out["status"] = (
                "rejected" if index in rejected else "kept" if index == keep else "accepted"
            )
        for k in ("ranking_batches", "removed", "removed_total", "finetune"):
            out[k] = row.get(k)
        for name in metric_names:
            out[f"metric:{name}"] = metrics.get(name)
        for name in metric_names:
            value, base = metrics.get(name), first_metrics.get(name)
            out[f"delta:{name}"] = None if value is None or base is None else value - base
        for key in ("params", "macs", "size_mb"):
            out[key] = row.get(key)
            out[f"{key.removesuffix('_mb')}_reduction_pct"] = _reduction_pct(
                first.get(key), row.get(key)
            )
        for key in ("latency_ms", "latency_iqr_ms", "original_latency_ms", "speedup",
                    "floor_speedup", "latency_decided_by"):  # fmt: skip
            out[key] = row.get(key)
        low, high = row.get("speedup_low"), row.get("speedup_high")
        out["speedup_range"] = None if low is None or high is None else f"{low:.2f}–{high:.2f}"
        flags = row.get("latency_flags")
        out["latency_flags"] = None if flags is None else ", ".join(flags) or "–"
        out["efficiency"] = None
        if out["speedup"] is not None and row.get("macs") and first.get("macs"):
            out["efficiency"] = out["speedup"] * row["macs"] / first["macs"]
        out_rows.append(out)
    reference_note = _mark_reference(out_rows)

    kinds = {n: metric_kinds(n, (r[f"metric:{n}"] for r in out_rows)) for n in metric_names}
    columns = [
        Column("iteration", "Iteration", "int"),
        Column("status", "Status", "text"),
        Column("ranking_batches", "Ranking batches", "int"),
        Column("removed", "Removed channels", "int"),
        Column("removed_total", "Removed total", "int"),
        Column("finetune", "Finetuning", "text"),
        *(Column(f"metric:{n}", n, kinds[n][0]) for n in metric_names),
        *(Column(f"delta:{n}", f"Δ {n}", kinds[n][1]) for n in metric_names),
        Column("params", "Params", "count"),
        Column("params_reduction_pct", "Params −%", "percent"),
        Column("macs", "MACs", "count"),
        Column("macs_reduction_pct", "MACs −%", "percent"),
        Column("size_mb", "Size (MB)", "mb"),
        Column("size_reduction_pct", "Size −%", "percent"),
        Column("latency_ms", "Latency (ms)", "ms"),
        Column("latency_iqr_ms", "± IQR (ms)", "ms"),
        Column("original_latency_ms", "Original (ms)", "ms"),
        Column("speedup", "Speed-up", "speedup"),
        Column("speedup_range", "Round range", "text"),
        Column("efficiency", "Efficiency", "metric"),
        Column("latency_flags", "Timing flags", "text"),
        Column("floor_speedup", "Clean-block speed-up", "speedup"),
        Column("latency_decided_by", "Goal decided by", "text"),
    ]
    notes = _iteration_notes(out_rows, keep, metric_names, kinds, retime) + reference_note
    if rejected:
        listed = ", ".join(str(rows[i]["iteration"]) for i in rejected)
        notes.append(
            f"Rejected (status 'rejected'): iteration {listed}; the run went back to the model "
            f"before it. The notes describe the kept model, iteration {rows[keep]['iteration']}."
        )
    predicted, measured = rows[keep].get("table_speedup"), out_rows[keep]["speedup"]
    if keep > 0 and predicted is not None and isinstance(measured, Real) and measured > 0:
        notes.append(
            f"The latency lookup table predicted {predicted:.2f}x from its conv and linear "
            f"layers alone, {(predicted / measured - 1) * 100:+.0f} % against the measured "
            "speed-up"
        )
    short = [  # the data ran out before --ranking-batches: say so (the loop logged it too)
        f"iteration {r['iteration']}: {r['ranking_batches']} of {r['ranking_batches_asked']}"
        for r in rows
        if r.get("ranking_batches_asked") is not None
    ]
    if short:
        notes.append(f"Ranking ran out of data, fewer batches than asked: {'; '.join(short)}")
    return Table("Pruning iterations", columns, out_rows, notes)


def _mark_reference(rows: list[dict[str, Any]]) -> list[str]:
    """Row 0, the original, is the reference of every speed-up: say so instead of a figure.

    The loop times the original beside its own copy (an A/A comparison), whose ratio is the
    machine's noise, not a speed-up: the row's ``speedup`` becomes :data:`REFERENCE` (its
    round range and efficiency ``None``) and the A/A figure goes into the returned note.
    Nothing changes when no row has a speed-up.
    """
    if not any(isinstance(r["speedup"], Real) for r in rows):
        return []
    first = rows[0]
    note = []
    if isinstance(first["speedup"], Real):
        spread = f", rounds {first['speedup_range']}" if first["speedup_range"] else ""
        note = [
            f"Iteration {first['iteration']} is the original, the reference of every speed-up; "
            f"timed beside its own copy it read {first['speedup']:.2f}x{spread}: the machine's "
            "noise, not a speed-up."
        ]
    first.update(speedup=REFERENCE, speedup_range=None, efficiency=None)
    return note


def _iteration_notes(
    rows: list[dict[str, Any]],
    keep: int,
    metric_names: list[str],
    kinds: Mapping[str, tuple[str, str]],
    retime: str = RETIME,
) -> list[str]:
    """The changes from row 0 to the kept row ``rows[keep]`` (none when that is row 0)."""
    if keep < 1:
        return []
    first, kept = rows[0], rows[keep]
    notes = []
    for key, kind, label in (
        ("size_mb", "mb", "Size"),
        ("macs", "count", "MACs"),
        ("params", "count", "Params"),
    ):
        pct = kept.get(f"{key.removesuffix('_mb')}_reduction_pct")
        if pct is not None:
            a, b = format_value(first[key], kind), format_value(kept[key], kind)
            notes.append(f"{label} reduction: ({a} − {b}) / {a} × 100 % = {pct:.1f} %")
    if kept.get("speedup") is not None:
        note = f"Measured speed-up: {kept['speedup']:.2f}x"
        if kept.get("speedup_range"):
            note += f" (rounds {kept['speedup_range']})"
        if kept.get("efficiency") is not None:
            note += (
                f" for {first['macs'] / kept['macs']:.2f}x fewer MACs; efficiency "
                f"(speed-up / MACs ratio) = {kept['efficiency']:.2f}"
            )
        if kept.get("latency_flags") not in (None, "–", ""):
            note += (
                f"; flagged {kept['latency_flags']}: the machine was too busy for this figure "
                f"to be trusted; {retime}"
            )
            if isinstance(kept.get("floor_speedup"), Real):
                note += (
                    f". Each model's fastest block that no other process interrupted gives "
                    f"{kept['floor_speedup']:.2f}x (-16 % to +13 % against idle timings on the "
                    "benchmark machine)"
                )
        notes.append(note)
    for name in metric_names:
        before, after = first.get(f"metric:{name}"), kept.get(f"metric:{name}")
        if before is not None and after is not None:
            value, change = kinds[name]
            a, b = format_value(before, value), format_value(after, value)
            notes.append(f"{name}: {a} → {b} ({format_value(after - before, change)})")
    return notes


def layer_table(*, before: Mapping[str, int], after: Mapping[str, int]) -> Table:
    """Build the per-layer channel table.

    Args:
        before: Producer (group label) -> channels of the original model. Each channel must
            appear once (see the module docstring).
        after: Layer name -> output channels after pruning; same layers as ``before`` (use 0 for
            a layer removed entirely).

    Returns:
        Columns ``layer``, ``before``, ``after``, ``removed``, ``pct_of_layer``
        (removed / before * 100) and ``pct_of_removed`` (removed / all removed * 100, which sums
        to 100 when anything was removed, 0 for every layer otherwise), rows in ``before`` order.
    """
    missing = [name for name in before if name not in after]
    extra = [name for name in after if name not in before]
    if missing or extra:
        raise ConfigError(
            f"layer_table: before and after must name the same layers; only in before:"
            f" {missing}, only in after: {extra} (use 0 for a fully removed layer)"
        )
    for name in before:
        b, a = before[name], after[name]
        if not isinstance(b, Integral) or not isinstance(a, Integral) or a < 0 or b < 0:
            raise ConfigError(
                f"layer_table: layer {name!r} needs channel counts as ints >= 0, "
                f"got before={b!r}, after={a!r}"
            )
        if a > b:
            raise ConfigError(
                f"layer_table: layer {name!r} has more channels after pruning "
                f"({a}) than before ({b}); were before/after swapped?"
            )

    total_removed = sum(before[n] - after[n] for n in before)
    rows = []
    for name in before:
        b, a = int(before[name]), int(after[name])
        removed = b - a
        rows.append(
            {
                "layer": name,
                "before": b,
                "after": a,
                "removed": removed,
                "pct_of_layer": removed / b * 100.0 if b else None,
                "pct_of_removed": removed / total_removed * 100.0 if total_removed else 0.0,
            }
        )
    total_before = sum(int(v) for v in before.values())
    notes = [
        f"Total: {total_before} → {plural(total_before - total_removed, 'channel')}, "
        f"{total_removed} removed "
        f"({total_removed / total_before * 100 if total_before else 0.0:.1f} %)"
    ]
    columns = [
        Column("layer", "Producing layer(s)", "text"),
        Column("before", "Before pruning", "int"),
        Column("after", "After pruning", "int"),
        Column("removed", "Channels removed", "int"),
        Column("pct_of_layer", "% of layer removed", "percent"),
        Column("pct_of_removed", "% of all removed", "percent"),
    ]
    return Table("Channels per layer", columns, rows, notes)
