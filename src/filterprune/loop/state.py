"""What the loop carries from one iteration to the next, how it is saved and restored (resume).

Everything an iteration depends on is here or in the checkpointed weights: the composed plans,
the counters and the rows. Finetuning builds its optimizer afresh every iteration and every
iteration reseeds the RNGs from ``(seed, iteration)``, so restoring this state and the weights
continues a run exactly as if it had never stopped.
"""

from __future__ import annotations

import hashlib
import random
import sys
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError
from ..plan import Plan, PlanError
from ..store.checkpoint import PLAN, STEP_PLAN, WEIGHTS, read_plan
from ..store.load import load_state_dict_strict
from ..store.rundir import RunDir, iteration_of
from ..store.weights import read_weights
from ..surgery import apply_plan

__all__ = ["LoopState", "restore", "seed_everything"]


def seed_everything(seed: int, tag: int | str) -> int:
    """Seed Python, torch (all devices) and numpy (if imported) from ``(seed, tag)``."""
    digest = hashlib.sha256(f"filterprune:{seed}:{tag}".encode()).digest()
    value = int.from_bytes(digest[:8], "little") % (2**63)
    random.seed(value)
    torch.manual_seed(value)
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed(value % (2**32))
    return value


@dataclass
class LoopState:
    """The loop's state between iterations.

    Attributes:
        plan: Original architecture -> current model (starts as the run's base plan).
        run_plan: Starting model -> current model.
        rows: The recorded rows.
        removed_total: Channels removed so far (from the current model's lineage).
        steps_done: Finetuning steps done so far (passed to the callback as ``start_step``).
        epochs_done: Finetuning epochs done so far (passed instead with ``unit="epochs"``).
        base_total: Prunable channels of the starting model (the base of the pruned fraction).
        iteration: Last completed iteration.
        current: Checkpoint name of the model the loop holds (differs from ``iteration`` after
            a rejected iteration).
    """

    plan: Plan = field(default_factory=Plan)
    run_plan: Plan = field(default_factory=Plan)
    rows: list[dict[str, Any]] = field(default_factory=list)
    removed_total: int = 0
    steps_done: int = 0
    epochs_done: int = 0
    base_total: int = 0
    iteration: int = 0
    current: str = "iter_000"

    @property
    def best_iteration(self) -> int:
        return iteration_of(self.current)

    @property
    def current_row(self) -> dict[str, Any]:
        return next(r for r in reversed(self.rows) if r["iteration"] == self.best_iteration)

    def to_json_dict(self, *, finished: bool, stop_reason: str | None, final: str | None) -> dict:
        return {
            "last_completed": self.iteration,
            "current": self.current,
            "final": final or self.current,
            "best_iteration": self.best_iteration,
            "removed_total": self.removed_total,
            "steps_done": self.steps_done,
            "epochs_done": self.epochs_done,
            "base_total": self.base_total,
            "finished": finished,
            "stop_reason": stop_reason,
        }


def restore(
    run: RunDir, model: nn.Module, saved: dict[str, Any], *, weights_from: str
) -> LoopState:
    """Bring ``model`` (the run's starting model) to checkpoint ``saved['current']``.

    The step plans of the accepted iterations are composed and applied, then the weights of
    checkpoint ``weights_from`` are loaded strictly.
    """
    last = saved["last_completed"]
    rows = [
        r for r in run.read_rows() if isinstance(r["iteration"], int) and r["iteration"] <= last
    ]
    current = iteration_of(saved["current"], source=f"run state {str(run.state_path)!r}")
    found = {r["iteration"] for r in rows}
    for needed in (0, current):
        if needed not in found:
            raise CheckpointError(
                f"run log {str(run.log_path)!r} has no row for iteration {needed}, which "
                f"{str(run.state_path)!r} refers to; restore the log or start a new run folder"
            )
    run_plan = Plan()
    for row in rows[1:]:
        if row.get("accepted", True) and row["iteration"] <= current:
            folder = run.checkpoint(RunDir.iteration_name(row["iteration"]))
            run_plan = run_plan.then(read_plan(folder / STEP_PLAN))
    where = f"run folder {str(run.path)!r}, checkpoint {weights_from!r}"
    try:
        apply_plan(model, run_plan)
    except PlanError as exc:
        raise CheckpointError(
            f"{where}: its plans do not fit the model given ({exc}); resume with the model the "
            "run was started from (same --model and --model-arg, see its model.json) or choose "
            "a new run folder"
        ) from None
    source = run.checkpoint(weights_from) / WEIGHTS
    load_state_dict_strict(model, read_weights(source), source=f"{where} ({source.name})")
    return LoopState(
        plan=read_plan(run.checkpoint(saved["current"]) / PLAN),
        run_plan=run_plan,
        rows=rows,
        removed_total=saved["removed_total"],
        steps_done=saved["steps_done"],
        epochs_done=saved.get("epochs_done", 0),  # runs of 0.x have none
        base_total=saved["base_total"],
        iteration=last,
        current=saved["current"],
    )
