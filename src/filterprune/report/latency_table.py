"""The latency table: every timed device and batch size of every iteration, with the speed-up
against the original and its efficiency (speed-up divided by the MAC reduction ratio)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from filterprune.measure.latency import efficiency, macs_reduction_ratio
from filterprune.report.tables import Column, Table

__all__ = ["latency_table"]


def _key(record: Mapping[str, Any]) -> tuple[str, int]:
    return str(record["device"]), int(record["batch_size"])


def latency_table(rows: Sequence[Mapping[str, Any]]) -> Table | None:
    """Build the latency table from iteration rows; row 0 must be the original model.

    Args:
        rows: Iteration rows as logged by the pruning loop: ``iteration`` and ``latency``, a list
            of records with ``device``, ``batch_size``, ``threads``, ``median_ms``, ``iqr_ms``,
            ``runs``, ``calls_per_run`` and ``macs`` (see
            :func:`~filterprune.measure.measure_latencies`). Rows without ``latency`` are skipped.

    Returns:
        One table row per (iteration, device, batch size), or ``None`` when no row was timed.
        ``speedup`` is the original's median over this median at the same device and batch
        size; ``macs_ratio`` the original's MACs over these MACs; ``efficiency`` their quotient
        (1.0 = latency fell exactly as much as MACs did).
    """
    timed = [row for row in rows if row.get("latency")]
    if not timed:
        return None
    base = {_key(r): r for r in (rows[0].get("latency") or [])}
    out = []
    for row in timed:
        for record in row["latency"]:
            first = base.get(_key(record))
            speed = ratio = eff = None
            if first is not None and record["median_ms"] > 0:
                speed = first["median_ms"] / record["median_ms"]
                if record.get("macs") and first.get("macs"):
                    ratio = macs_reduction_ratio(first["macs"], record["macs"])
                    eff = efficiency(
                        speedup=speed, macs_before=first["macs"], macs_after=record["macs"]
                    )
            out.append(
                {
                    "iteration": row.get("iteration"),
                    "device": record["device"],
                    "batch_size": record["batch_size"],
                    "threads": record.get("threads"),
                    "median_ms": record["median_ms"],
                    "iqr_ms": record.get("iqr_ms"),
                    "calls": record.get("runs", 0) * record.get("calls_per_run", 1),
                    "macs": record.get("macs"),
                    "speedup": speed,
                    "macs_ratio": ratio,
                    "efficiency": eff,
                }
            )
    columns = [
        Column("iteration", "Iteration", "text"),
        Column("device", "Device", "text"),
        Column("batch_size", "Batch", "int"),
        Column("threads", "Threads", "int"),
        Column("median_ms", "Median (ms)", "ms"),
        Column("iqr_ms", "IQR (ms)", "ms"),
        Column("calls", "Timed calls", "int"),
        Column("macs", "MACs", "count"),
        Column("speedup", "Speed-up", "speedup"),
        Column("macs_ratio", "MACs ratio", "speedup"),
        Column("efficiency", "Efficiency", "metric"),
    ]
    notes = [
        "Speed-up = original median / median (same device and batch size); MACs ratio = "
        "original MACs / MACs; efficiency = speed-up / MACs ratio (1.0: latency fell as much "
        "as MACs)."
    ]
    return Table("Latency", columns, out, notes)
