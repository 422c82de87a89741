"""What a pruning run returns: the final model, its plan, one row per iteration, the stop reason."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from ..plan import Plan
from .stop import STOP_REASONS

__all__ = ["RunResult"]


@dataclass(repr=False)
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

    def __repr__(self) -> str:
        """One line: where the run ended and what it changed (the whole plan stays in ``plan``)."""
        first, last = self.rows[0] if self.rows else {}, self.final_row
        parts = [f"stopped={self.stop_reason!r}", f"best_iteration={self.best_iteration}"]
        for key in ("params", "macs"):
            if key in first and key in last and first[key]:
                change = 100.0 * (last[key] - first[key]) / first[key]
                parts.append(f"{key} {first[key]:,} -> {last[key]:,} ({change:+.1f}%)")
        for name, value in sorted((last.get("metrics") or {}).items()):
            before = (first.get("metrics") or {}).get(name)
            shown = f"{before:.4g} -> {value:.4g}" if before is not None else f"{value:.4g}"
            parts.append(f"{name} {shown}")
        if self.run_dir is not None:
            parts.append(f"run_dir={str(self.run_dir)!r}")
        return f"RunResult({', '.join(parts)})"

    @property
    def stop_message(self) -> str:
        return STOP_REASONS.get(self.stop_reason, self.stop_reason)

    @property
    def metrics(self) -> dict[str, float]:
        """Metrics of the final model."""
        return dict(self.final_row.get("metrics") or {})

    # the tables are the report's (loaded on first use: the loop itself never needs them)
    def table_rows(self) -> list[dict[str, Any]]:
        """``rows`` reduced to the keys :func:`filterprune.report.iteration_table` accepts."""
        from ..report.tables import table_rows

        return table_rows(self.rows)

    def table(self) -> Any:
        """The per-iteration :class:`filterprune.report.Table` (row 0 = the starting model)."""
        from ..report.tables import iteration_table

        return iteration_table(self.table_rows())

    def layer_table(self) -> Any:
        """Output channels per producing layer: starting model vs. final model."""
        from ..report.tables import layer_table

        return layer_table(before=self.rows[0]["channels"], after=self.final_row["channels"])
