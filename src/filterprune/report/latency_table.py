"""The latency table: every timed device and batch size of every iteration, with the speed-up
against the original (timed beside it) and its efficiency (speed-up / MAC reduction ratio)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Real
from typing import Any

from filterprune.measure.latency import (
    MIN_CPU_SHARE,
    NOISY_IQR_FRACTION,
    ROUNDS_DISAGREE_FRACTION,
    efficiency,
    macs_reduction_ratio,
)
from filterprune.report.tables import REFERENCE, Column, Table

__all__ = ["FLAG_MEANINGS", "latency_table"]


def latency_table(rows: Sequence[Mapping[str, Any]], *, label: str | None = None) -> Table | None:
    """Build the latency table from iteration rows.

    Args:
        rows: Iteration rows as logged by the pruning loop: ``iteration`` and ``latency``, a list
            of records of :func:`~filterprune.measure.compare_latencies` (``device``,
            ``batch_size``, ``threads``, ``median_ms``, ``iqr_ms``, ``runs``,
            ``calls_per_run``, ``macs``, ``original_median_ms``, ``original_macs``,
            ``speedup``, ``speedup_low``, ``speedup_high``, ``rounds``, ``flags``), and
            ``accepted`` (``False``: an iteration the run rejected). Rows without ``latency``
            are skipped; records without ``speedup`` (timed alone) show no speed-up. The
            ``iteration`` may also be free text naming a comparison (``filterprune eval``).
        label: Header of the first column; ``None``: ``"Iteration"`` when every ``iteration``
            is a number or ``"final"``, else ``"Comparison"``.

    Returns:
        One table row per (iteration, device, batch size), or ``None`` when no row was timed.
        Iteration 0 (the original, timed beside its own copy) shows ``"reference"`` as its
        speed-up: that A/A ratio is the machine's noise, not a speed-up.
        ``speedup`` is the median round ratio of the original and this model timed side by
        side; ``macs_ratio`` the original's MACs over these MACs; ``efficiency`` their quotient
        (1.0 = latency fell exactly as much as MACs did); ``status`` is ``"rejected"`` for the
        records of a rejected iteration, ``"accepted"`` for the others (``None`` throughout
        when nothing was rejected). The notes explain only the columns and flags that
        have a value (the Markdown and HTML views leave empty columns out).
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
                    "status": "rejected" if row.get("accepted") is False else "accepted",
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
    if all(r["status"] == "accepted" for r in out):
        for r in out:  # nothing rejected: no status column
            r["status"] = None
    if label is None:
        numbered = all(isinstance(r["iteration"], int) or r["iteration"] == "final" for r in out)
        label = "Iteration" if numbered else "Comparison"
    columns = [
        Column("iteration", label, "text"),
        Column("status", "Status", "text"),
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
    return Table("Latency", columns, out, _notes(out))


#: What each timing flag means (the definitions of :mod:`filterprune.measure.latency`).
FLAG_MEANINGS = (
    f"'noisy reference' / 'noisy model' = the original's / this model's IQR within its rounds "
    f"above {NOISY_IQR_FRACTION:.0%} of its median",
    "'rounds disagree' = the round ratios next to the median one (the 2nd and 4th of 5; with 4 "
    f"rounds or fewer the lowest and highest) further apart than {ROUNDS_DISAGREE_FRACTION:.0%} "
    "of the speed-up: the figure may be off by that much",
    "'preempted (on a core N % of the time)' = on the CPU the timing process held a core less "
    f"than {MIN_CPU_SHARE:.0%} of its wall time (other processes had the cores; N is its share)",
)


def _notes(rows: list[dict[str, Any]]) -> list[str]:
    """Sentences explaining the columns and flags of ``rows`` that have a value."""

    def has(key: str) -> bool:
        return any(r.get(key) is not None for r in rows)

    notes = []
    if any(isinstance(r["speedup"], Real) for r in rows):
        sentence = (
            "Speed-up = median over rounds of original / this model, both timed in the same "
            "process in alternating rounds (same threads, inputs and warm-up)"
        )
        if has("speedup_range"):
            sentence += "; round range = lowest–highest round ratio"
        notes.append(sentence + ".")
    if has("macs_ratio"):
        notes.append(
            "MACs ratio = original MACs / MACs; efficiency = speed-up / MACs ratio (1.0: "
            "latency fell as much as MACs)."
        )
    if has("flags"):
        notes.append(
            "Timing flags mark a figure not to trust ('–': none): " + "; ".join(FLAG_MEANINGS) + "."
        )
    if any(r["speedup"] == REFERENCE for r in rows):
        notes.append(
            "Iteration 0 is the original, the reference: timed beside its own copy, its ratio "
            "is the machine's noise, not a speed-up."
        )
    if has("status"):
        notes.append(
            "Status 'rejected': an iteration the run rejected and went back from; the kept "
            "model is the last accepted one."
        )
    return notes
