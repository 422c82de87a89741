"""The latency table: every timed device and batch size of every iteration, with the speed-up
against the original (timed beside it) and its efficiency (speed-up / MAC reduction ratio)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from filterprune.measure.latency import (
    MIN_CPU_SHARE,
    NOISY_IQR_FRACTION,
    ROUNDS_DISAGREE_FRACTION,
    efficiency,
    macs_reduction_ratio,
)
from filterprune.report.tables import REFERENCE, Column, Table

__all__ = ["latency_table"]


def latency_table(rows: Sequence[Mapping[str, Any]]) -> Table | None:
    """Build the latency table from iteration rows.

    Args:
        rows: Iteration rows as logged by the pruning loop: ``iteration`` and ``latency``, a list
            of records of :func:`~filterprune.measure.compare_latencies` (``device``,
            ``batch_size``, ``threads``, ``median_ms``, ``iqr_ms``, ``runs``,
            ``calls_per_run``, ``macs``, ``original_median_ms``, ``original_macs``,
            ``speedup``, ``speedup_low``, ``speedup_high``, ``rounds``, ``flags``). Rows
            without ``latency`` are skipped; records without ``speedup`` (timed alone) show
            no speed-up.

    Returns:
        One table row per (iteration, device, batch size), or ``None`` when no row was timed.
        Iteration 0 (the original, timed beside its own copy) shows ``"reference"`` as its
        speed-up: that A/A ratio is the machine's noise, not a speed-up.
        ``speedup`` is the median round ratio of the original and this model timed side by
        side; ``macs_ratio`` the original's MACs over these MACs; ``efficiency`` their quotient
        (1.0 = latency fell exactly as much as MACs did).
    """
    timed = [row for row in rows if row.get("latency")]
    if not timed:
        return None
    out = []
    for row in timed:
        for record in row["latency"]:
            speed, low, high = (record.get(k) for k in ("speedup", "speedup_low", "speedup_high"))
            ratio = eff = None
            if speed is not None and record.get("macs") and record.get("original_macs"):
                ratio = macs_reduction_ratio(record["original_macs"], record["macs"])
                eff = efficiency(
                    speedup=speed, macs_before=record["original_macs"], macs_after=record["macs"]
                )
            if row.get("iteration") == 0 and speed is not None:  # the original beside its copy
                speed, low, eff = REFERENCE, None, None
            flags = record.get("flags")
            out.append(
                {
                    "iteration": row.get("iteration"),
                    "device": record["device"],
                    "batch_size": record["batch_size"],
                    "threads": record.get("threads"),
                    "median_ms": record["median_ms"],
                    "iqr_ms": record.get("iqr_ms"),
                    "original_ms": record.get("original_median_ms"),
                    "rounds": record.get("rounds"),
                    "calls": record.get("runs", 0) * record.get("calls_per_run", 1),
                    "macs": record.get("macs"),
                    "speedup": speed,
                    "speedup_range": None if low is None else f"{low:.2f}–{high:.2f}",
                    "macs_ratio": ratio,
                    "efficiency": eff,
                    "flags": None if flags is None else ", ".join(flags) or "–",
                }
            )
    columns = [
        Column("iteration", "Iteration", "text"),
        Column("device", "Device", "text"),
        Column("batch_size", "Batch", "int"),
        Column("threads", "Threads", "int"),
        Column("median_ms", "Median (ms)", "ms"),
        Column("iqr_ms", "IQR (ms)", "ms"),
        Column("original_ms", "Original (ms)", "ms"),
        Column("rounds", "Rounds", "int"),
        Column("calls", "Timed calls", "int"),
        Column("macs", "MACs", "count"),
        Column("speedup", "Speed-up", "speedup"),
        Column("speedup_range", "Round range", "text"),
        Column("macs_ratio", "MACs ratio", "speedup"),
        Column("efficiency", "Efficiency", "metric"),
        Column("flags", "Timing flags", "text"),
    ]
    notes = [
        "Speed-up = median over rounds of original / this model, both timed in the same "
        "process in alternating rounds (same threads, inputs and warm-up); round range = "
        "lowest–highest round ratio. MACs ratio = original MACs / MACs; efficiency = speed-up "
        "/ MACs ratio (1.0: latency fell as much as MACs). A flag marks a figure not to trust: "
        f"'noisy' = a model's IQR above {NOISY_IQR_FRACTION:.0%} of its median; 'rounds "
        "disagree' = the rounds beside the median one further apart than "
        f"{ROUNDS_DISAGREE_FRACTION:.0%} of the speed-up; 'preempted' = the timing process "
        f"held a core less than {MIN_CPU_SHARE:.0%} of the time (other processes had the cores). "
        "Iteration 0 is the original, the "
        "reference."
    ]
    return Table("Latency", columns, out, notes)
