"""What the loop keeps: its run folder, the last good model, and resuming from the folder.

:class:`RunRecord` is the part of :class:`~filterprune.loop.PruningLoop` that writes and reads
checkpoints: each iteration's row and weights (:meth:`RunRecord._record`), the state file that
a resume starts from (:meth:`RunRecord._save_state`), the last good model to fall back on
(:meth:`RunRecord._keep_best`, :meth:`RunRecord._roll_back`) and the resume itself
(:meth:`RunRecord._resume`).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..config import RESUMABLE_CHANGES, ConfigError, PruneConfig
from ..plan import Plan
from ..store.rundir import RunDir
from .state import LoopState, restore
from .stop import RETRYABLE_STOPS, Guard, collapse_guard, metric_threshold

if TYPE_CHECKING:
    from .replicas import Replicas
    from .result import RunResult

__all__ = ["RunRecord"]

logger = logging.getLogger("filterprune.loop")


class RunRecord:
    """Checkpoints, the last good model and resume, for :class:`~filterprune.loop.PruningLoop`."""

    config: PruneConfig
    model: nn.Module
    state: LoopState
    rundir: RunDir | None
    replicas: Replicas
    best: tuple[nn.Module | None, LoopState] | None
    guard: Guard | None
    threshold: float | None
    finetune_fn: Any
    device: torch.device
    _graph: Any

    def _record(
        self,
        name: str,
        row: dict[str, Any],
        weights: bytes,
        step: Plan,
        scores: Mapping[str, torch.Tensor] | None = None,
    ) -> None:
        self.state.rows.append(row)
        if self.rundir is not None and self.replicas.main:
            self.rundir.write_checkpoint(
                name, weights=weights, plan=self.state.plan, step_plan=step, row=row, scores=scores
            )
            self.rundir.write_log(self.state.rows)

    def _save_state(
        self, *, finished: bool = False, stop_reason: str | None = None, final: str | None = None
    ) -> None:
        if self.rundir is not None:
            if self.replicas.main:
                state = self.state.to_json_dict(
                    finished=finished, stop_reason=stop_reason, final=final
                )
                # the settings this state was reached with, switched with it in one rename: a
                # resume compares against them (config.json may already hold newer ones)
                self.rundir.write_state({**state, "config": self.config.to_dict()})
            self.replicas.barrier()  # other ranks may read the run folder from here on

    def _keep_best(self) -> None:
        """Remember the current model as the last good one (a copy if a floor is set or a
        finetuning may diverge)."""
        finetunes = self.config.budget().amount or self.config.budget(final=True).amount
        needed = (
            self.config.watches_metric
            or self.guard is not None
            or (self.finetune_fn is not None and finetunes)
        )
        kept = copy.deepcopy(self.model) if needed else None
        self.best = (kept, copy.copy(self.state))

    def _roll_back(self, rejected: int | None = None) -> None:
        """Go back to the last good model and state.

        Args:
            rejected: The iteration whose result is rejected; its log row, its number and the
                finetuning steps it took stay counted. ``None`` (a divergence) reverts all.
        """
        kept_model, kept_state = self.best
        if rejected is not None:
            kept_state.rows, kept_state.iteration = self.state.rows, rejected
            kept_state.steps_done = self.state.steps_done
            kept_state.epochs_done = self.state.epochs_done
        self.model, self._graph, self.state = kept_model, None, kept_state
        self._keep_best()

    def _resume(self) -> RunResult | None:
        """Continue a checkpointed run; returns the stored result if it already finished."""
        run = self.rundir
        assert run is not None
        saved = run.read_state()
        if "config" in saved:
            old = PruneConfig.from_dict(saved["config"], source=f"{run.state_path}: config")
        else:  # a state written before the settings were kept in it
            old = PruneConfig.from_json(run.read_config_json(), source=str(run.config_path))
        diff = old.differences(self.config)
        fixed = [k for k in diff if k not in RESUMABLE_CHANGES]
        if fixed:
            raise ConfigError(
                f"run folder {str(run.path)!r} was started with a different config "
                f"({', '.join(fixed)} differ); resume with the same settings or use a new run "
                f"folder (only {', '.join(RESUMABLE_CHANGES)} may change)"
            )
        # a run stopped by a NaN loss continues from its last good iteration
        retry = saved["stop_reason"] in RETRYABLE_STOPS
        done = self.replicas.shared(saved["finished"] and not diff and not retry)
        weights_from = saved["final"] if done else saved["current"]
        self._keep_original()  # the model passed in is the starting model (see run_pruning)
        self.state = restore(run, self.model, saved, weights_from=weights_from)
        self.model.to(self.device)
        self.threshold = metric_threshold(self.config, self.state.rows[0].get("metrics") or {})
        self.guard = collapse_guard(self.config, self.state.rows[0].get("metrics") or {})
        if done:
            if self.replicas.main:
                run.tidy(saved)  # e.g. the old final model, if a kill came before its removal
            final_row = run.read_row(saved["final"])
            if saved["final"] != saved["current"]:
                self.state.rows.append(final_row)
            return self._result(saved["stop_reason"], final_row)
        self.replicas.barrier()  # every rank has read the run folder before rank 0 writes to it
        if self.replicas.main:
            run.write_config(self.config.to_json())
            logger.info("resuming %s after iteration %d", run.path, self.state.iteration)
        self._keep_best()
        return None
