"""What a pruning run returns: the final model, its plan, one row per iteration, the stop reason."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from ..plan import Plan
from .stop import STOP_REASONS

__all__ = ["TABLE_KEYS", "RunResult"]

# Row keys understood by filterprune.report.iteration_table; rows hold a few more (accepted,
# pruned_fraction, amount, scope, channels, latency, seconds, recovery) that only the log keeps.
TABLE_KEYS = (
    "iteration",
    "ranking_batches",
    "removed",
    "removed_total",
    "finetune",
    "metrics",
    "params",
    "macs",
    "size_mb",
    "latency_ms",
    "latency_iqr_ms",
)


def table_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows reduced to the keys :func:`filterprune.report.iteration_table` accepts."""
    return [{k: row[k] for k in TABLE_KEYS if k in row} for row in rows]


@dataclass
class RunResult:
    """What a pruning run produced.

    Attributes:
        model: The final model (after the final finetune, or the last good iteration's model).
        plan: Composed plan from the original architecture to ``model``'s (original numbering).
        rows: One dict per recorded iteration: row 0 is the starting model, a rejected iteration
            has ``accepted=False``, the final finetune's row has ``iteration="final"``.
        stop_reason: A key of :data:`filterprune.loop.STOP_REASONS`.
        best_iteration: The iteration ``model`` comes from.
        run_dir: The run folder, if the run was checkpointed.
        final_row: The row describing ``model``.
        stop_detail: What went wrong, when the run stopped short: the NaN/inf error of a
            diverged finetuning (``stop_reason == "non_finite"``) or the targets not reached.
    """

    model: nn.Module
    plan: Plan
    rows: list[dict[str, Any]]
    stop_reason: str
    best_iteration: int
    run_dir: Path | None = None
    final_row: dict[str, Any] = field(default_factory=dict)
    stop_detail: str | None = None

    @property
    def stop_message(self) -> str:
        return STOP_REASONS.get(self.stop_reason, self.stop_reason)

    @property
    def metrics(self) -> dict[str, float]:
        """Metrics of the final model."""
        return dict(self.final_row.get("metrics") or {})

    def table_rows(self) -> list[dict[str, Any]]:
        """``rows`` reduced to the keys :func:`filterprune.report.iteration_table` accepts."""
        return table_rows(self.rows)

    def table(self) -> Any:
        """The per-iteration :class:`filterprune.report.Table` (row 0 = the starting model)."""
        from ..report import iteration_table

        return iteration_table(table_rows(self.rows))

    def layer_table(self) -> Any:
        """Output channels per producing layer: starting model vs. final model."""
        from ..report import layer_table

        return layer_table(before=self.rows[0]["channels"], after=self.final_row["channels"])
