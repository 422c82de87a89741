"""The iterative pruning loop: rank and remove -> finetune -> evaluate -> record, until a stop.

One iteration calls :func:`filterprune.prune` once (ranking and removal in one pass), then the
user's ``finetune`` callback, then ``evaluate``, and records one row: iteration, ranking batches,
channels removed (this iteration and in total), finetuning done, metrics, params, MACs,
checkpoint size and optionally latency. Row 0 is the starting model, evaluated.

Surgery replaces the pruned parameters with new ``nn.Parameter`` objects, so the ``finetune``
callback must build its optimizer (and any LR scheduler) on every call from
``model.parameters()``; an optimizer kept across iterations would update stale tensors.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import logging
import random
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..api import analyze, count, prune
from ..criteria import get_criterion
from ..plan import Plan
from ..surgery import apply_plan
from .checkpoint import RunDir, read_plan, read_weights, state_dict_bytes
from .config import RESUMABLE_CHANGES, Budget, ConfigError, PruneConfig
from .layers import ignored_layers, layer_widths
from .load import load_state_dict_strict
from .stop import STOP_REASONS, max_removable, metric_ok, metric_threshold, plan_removal
from .stop import targets_reached as _targets_reached

__all__ = ["PruningLoop", "RunResult", "run_pruning", "seed_everything"]

logger = logging.getLogger("filterprune.loop")

FinetuneFn = Callable[[nn.Module, int, Budget], "int | None"]
EvaluateFn = Callable[[nn.Module], Mapping[str, float]]
BatchesFn = Callable[[], Iterable[Any]]
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
)


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
class RunResult:
    """What a pruning run produced.

    Attributes:
        model: The final model (after the final finetune, or the last good iteration's model).
        plan: Composed plan from the original architecture to ``model``'s (original numbering).
        rows: One dict per recorded iteration (row 0: the start; ``"final"``: final finetune).
        stop_reason: A key of :data:`filterprune.loop.stop.STOP_REASONS`.
        best_iteration: The iteration ``model`` comes from.
        run_dir: The run folder, if the run was checkpointed.
    """

    model: nn.Module
    plan: Plan
    rows: list[dict[str, Any]]
    stop_reason: str
    best_iteration: int
    run_dir: Path | None = None
    final_row: dict[str, Any] = field(default_factory=dict)

    @property
    def stop_message(self) -> str:
        return STOP_REASONS.get(self.stop_reason, self.stop_reason)

    @property
    def metrics(self) -> dict[str, float]:
        return dict(self.final_row.get("metrics") or {})

    def table_rows(self) -> list[dict[str, Any]]:
        """Rows with the keys :func:`filterprune.report.iteration_table` accepts."""
        return [{k: row[k] for k in TABLE_KEYS if k in row} for row in self.rows]

    def table(self) -> Any:
        """The per-iteration :class:`filterprune.report.Table`."""
        from ..report import iteration_table

        return iteration_table(self.table_rows())

    def layer_table(self) -> Any:
        """Output channels per producing layer, start vs. final model."""
        from ..report import layer_table

        return layer_table(before=self.rows[0]["channels"], after=self.final_row["channels"])


class _Counted:
    """Iterates ``source`` and counts the items handed out."""

    def __init__(self, source: Iterable[Any]) -> None:
        self.source, self.count = source, 0

    def __iter__(self) -> Iterator[Any]:
        for item in self.source:
            self.count += 1
            yield item


def _to_device(inputs: Any, device: torch.device) -> Any:
    if isinstance(inputs, torch.Tensor):
        return inputs.to(device)
    if isinstance(inputs, list | tuple):
        return type(inputs)(_to_device(x, device) for x in inputs)
    return inputs


def _config_diff(old: PruneConfig, new: PruneConfig) -> list[str]:
    a, b = old.to_dict(), new.to_dict()
    return [k for k in a if a[k] != b.get(k)]


class PruningLoop:
    """Iterative filter pruning of one model; see :func:`run_pruning` for the arguments."""

    def __init__(
        self,
        model: nn.Module,
        example_inputs: Any,
        *,
        config: PruneConfig,
        finetune: FinetuneFn | None = None,
        evaluate: EvaluateFn | None = None,
        batches: BatchesFn | None = None,
        loss_fn: Callable[[Any, Any], torch.Tensor] | None = None,
        run_dir: str | Path | None = None,
        base_plan: Plan | None = None,
        progress: bool = True,
    ) -> None:
        if not isinstance(config, PruneConfig):
            raise TypeError(f"config must be a PruneConfig, got {type(config).__name__}")
        if config.finetune and finetune is None:
            raise ConfigError(
                f"PruneConfig.finetune={config.finetune} needs a finetune callback "
                "(model, start_step, budget) -> steps; pass finetune=... or set finetune=0"
            )
        if config.final_finetune and finetune is None:
            raise ConfigError("PruneConfig.final_finetune needs a finetune callback")
        if config.watches_metric and evaluate is None:
            raise ConfigError("a metric floor needs an evaluate callback (model) -> dict")
        self.config = config
        self.device = torch.device(config.device)
        self.model = model.to(self.device)
        self.example = _to_device(example_inputs, self.device)
        self.finetune_fn, self.evaluate_fn = finetune, evaluate
        self.batches_fn, self.loss_fn = batches, loss_fn
        self.rundir = RunDir(run_dir) if run_dir is not None else None
        self.base_plan = base_plan or Plan()
        self.progress = progress
        self.criterion = get_criterion(config.criterion, **config.criterion_options)
        self.needs_data = bool(getattr(self.criterion, "needs_data", False))
        if self.needs_data and (batches is None or loss_fn is None):
            raise ConfigError(
                f"criterion {config.criterion!r} ranks with data: pass batches=(callable "
                "returning an iterable of (inputs, targets)) and loss_fn=(output, target) -> loss"
            )
        self.ignore = ignored_layers(self.model, config)
        # state of the run
        self.plan = self.base_plan  # original architecture -> current model
        self.run_plan = Plan()  # starting model -> current model
        self.rows: list[dict[str, Any]] = []
        self.removed_total = self.steps_done = self.base_total = 0
        self.iteration = 0
        self.current = RunDir.iteration_name(0)
        self.best: tuple[Any, ...] | None = None
        self.threshold: float | None = None
        self._graph: Any = None

    # ----- measurement -----------------------------------------------------------------------
    def _evaluate(self) -> dict[str, float]:
        if self.evaluate_fn is None:
            return {}
        metrics = self.evaluate_fn(self.model)
        if not isinstance(metrics, Mapping):
            raise TypeError(
                f"the evaluate callback must return a dict name -> number, got "
                f"{type(metrics).__name__}"
            )
        return {str(k): float(v) for k, v in metrics.items()}

    def _row(self, iteration: int | str, **fields: Any) -> tuple[dict[str, Any], bytes]:
        counts = count(self.model, self.example)
        weights = state_dict_bytes(self.model)
        row: dict[str, Any] = {"iteration": iteration, **fields}
        row.update(params=counts.params, macs=counts.macs, size_mb=len(weights) / 1e6)
        if self.config.needs_latency:
            from ..report import measure_latency

            row["latency_ms"] = measure_latency(self.model, self.example)[0].median_ms
        row["channels"] = layer_widths(self.model)
        return row, weights

    def _finetune(self, budget: Budget) -> int:
        if budget.amount <= 0 or self.finetune_fn is None:
            return 0
        done = self.finetune_fn(self.model, self.steps_done, budget)
        if done is None:
            return 0
        if isinstance(done, bool) or not isinstance(done, int) or done < 0:
            raise TypeError(
                f"the finetune callback must return the number of steps it did (an int >= 0), "
                f"got {done!r}"
            )
        return done

    @staticmethod
    def _finetune_text(budget: Budget, steps: int) -> str:
        if budget.unit == "epochs":
            return f"{budget} ({steps} steps)"
        return f"{steps} steps"

    # ----- persistence -----------------------------------------------------------------------
    def _state(self, *, finished: bool, stop_reason: str | None, final: str | None) -> dict:
        return {
            "last_completed": self.iteration,
            "current": self.current,
            "final": final or self.current,
            "best_iteration": self.best_iteration,
            "removed_total": self.removed_total,
            "steps_done": self.steps_done,
            "base_total": self.base_total,
            "finished": finished,
            "stop_reason": stop_reason,
        }

    @property
    def best_iteration(self) -> int:
        return int(self.current.removeprefix("iter_"))

    def _record(self, name: str, row: dict, weights: bytes, step: Plan) -> None:
        self.rows.append(row)
        if self.rundir is None:
            return
        self.rundir.write_checkpoint(name, weights=weights, plan=self.plan, step_plan=step, row=row)
        self.rundir.write_log(self.rows)

    def _save_state(
        self, *, finished: bool = False, stop_reason: str | None = None, final: str | None = None
    ) -> None:
        if self.rundir is not None:
            self.rundir.write_state(
                self._state(finished=finished, stop_reason=stop_reason, final=final)
            )

    def _keep_best(self) -> None:
        copy_of = copy.deepcopy(self.model) if self.config.watches_metric else None
        self.best = (self.current, copy_of, self.plan, self.run_plan, self.removed_total)

    # ----- start / resume --------------------------------------------------------------------
    def _start(self) -> None:
        graph = analyze(self.model, self.example, ignore=self.ignore)
        self._graph = graph
        self.base_total = sum(g.size for g in graph.prunable)
        seed_everything(self.config.seed, 0)
        metrics = self._evaluate()
        self.threshold = metric_threshold(self.config, metrics)
        row, weights = self._row(
            0,
            ranking_batches=0,
            removed=0,
            removed_total=0,
            metrics=metrics,
            pruned_fraction=0.0,
            accepted=True,
        )
        if self.rundir is not None:
            self.rundir.path.mkdir(parents=True, exist_ok=True)
            self.rundir.write_config(self.config.to_json())
        self._record(self.current, row, weights, Plan())
        self._keep_best()
        self._save_state()

    def _restore(self, state: dict[str, Any], weights_from: str) -> None:
        """Rebuild the model of checkpoint ``state['current']`` on the starting model."""
        assert self.rundir is not None
        last = state["last_completed"]
        self.rows = [
            r
            for r in self.rundir.read_rows()
            if isinstance(r["iteration"], int) and r["iteration"] <= last
        ]
        current = int(state["current"].removeprefix("iter_"))
        run_plan = Plan()
        for row in self.rows[1:]:
            if row.get("accepted", True) and row["iteration"] <= current:
                name = RunDir.iteration_name(row["iteration"])
                run_plan = run_plan.then(read_plan(self.rundir.checkpoint(name) / "step_plan.json"))
        apply_plan(self.model, run_plan)
        source = self.rundir.checkpoint(weights_from) / "weights.safetensors"
        load_state_dict_strict(self.model, read_weights(source), source=str(source))
        self.model.to(self.device)
        self.run_plan = run_plan
        self.plan = read_plan(self.rundir.checkpoint(state["current"]) / "plan.json")
        self.iteration, self.current = last, state["current"]
        self.removed_total = state["removed_total"]
        self.steps_done, self.base_total = state["steps_done"], state["base_total"]
        self.threshold = metric_threshold(self.config, self.rows[0].get("metrics") or {})
        self._keep_best()

    def _resume(self) -> RunResult | None:
        """Continue a checkpointed run; returns the stored result if it already finished."""
        assert self.rundir is not None
        state = self.rundir.read_state()
        saved = PruneConfig.from_json(
            self.rundir.read_config_json(), source=str(self.rundir.config_path)
        )
        diff = _config_diff(saved, self.config)
        fixed = [k for k in diff if k not in RESUMABLE_CHANGES]
        if fixed:
            raise ConfigError(
                f"run folder {str(self.rundir.path)!r} was started with a different config "
                f"({', '.join(fixed)} differ); resume with the same settings or use a new run "
                f"folder (only {', '.join(RESUMABLE_CHANGES)} may change)"
            )
        if state["finished"] and not diff:
            self._restore(state, state["final"])
            final = self.rundir.read_row(state["final"])
            if state["final"] != state["current"]:
                self.rows.append(final)
            return self._result(state["stop_reason"], final)
        self._restore(state, state["current"])
        self.rundir.write_config(self.config.to_json())
        logger.info("resuming %s after iteration %d", self.rundir.path, self.iteration)
        return None

    # ----- the loop --------------------------------------------------------------------------
    def _stop_before(self, i: int) -> tuple[str | None, Any]:
        """Checks made before iteration ``i`` removes anything; returns (reason, removal)."""
        cfg = self.config
        current_row = next(r for r in reversed(self.rows) if r["iteration"] == self.best_iteration)
        if _targets_reached(cfg, self.rows[0], current_row):
            return "target_reached", None
        if cfg.max_iterations is not None and i > cfg.max_iterations:
            return "max_iterations", None
        amount = cfg.amount_for(i)
        if amount is None:
            return "schedule_done", None
        remaining = max_removable(self.base_total, cfg.max_pruned_fraction) - self.removed_total
        if remaining <= 0:
            return "max_pruned_fraction", None
        if self._graph is None:
            self._graph = analyze(self.model, self.example, ignore=self.ignore)
        prunable = sum(g.size for g in self._graph.prunable)
        removal = plan_removal(
            amount, cfg.scope_for(amount), prunable=prunable, remaining=remaining
        )
        if removal is None:
            return "nothing_left", None
        return None, removal

    def _iterate(self, i: int, removal: Any) -> str | None:
        cfg = self.config
        started = time.perf_counter()
        seed_everything(cfg.seed, i)
        self.model.zero_grad(set_to_none=True)
        context: dict[str, Any] = {}
        counted = None
        if self.needs_data:
            counted = _Counted(itertools.islice(self.batches_fn(), cfg.ranking_batches))
            context = {"batches": counted, "loss_fn": self.loss_fn}
        step = prune(
            self.model,
            self.example,
            amount=removal.fraction,
            criterion=self.criterion,
            scope=removal.scope,
            round_to=cfg.round_to,
            min_channels=cfg.min_channels,
            graph=self._graph,
            **context,
        )
        self._graph = None
        removed = step.num_removed
        if removed == 0:
            return "max_pruned_fraction" if removal.clipped else "nothing_left"
        self.removed_total += removed
        self.plan, self.run_plan = self.plan.then(step), self.run_plan.then(step)
        steps = self._finetune(cfg.budget())
        self.steps_done += steps
        metrics = self._evaluate()
        accepted = metric_ok(cfg, self.threshold, metrics)
        self.iteration = i
        name = RunDir.iteration_name(i)
        row, weights = self._row(
            i,
            ranking_batches=counted.count if counted else 0,
            removed=removed,
            removed_total=self.removed_total,
            finetune=self._finetune_text(cfg.budget(), steps),
            metrics=metrics,
            pruned_fraction=self.removed_total / self.base_total if self.base_total else 0.0,
            amount=removal.fraction,
            scope=removal.scope,
            accepted=accepted,
            seconds=round(time.perf_counter() - started, 3),
        )
        self._record(name, row, weights, step)
        if not accepted:
            best_name, best_model, self.plan, self.run_plan, self.removed_total = self.best
            self.model, self.current = best_model, best_name
            self._keep_best()
            self._save_state()
            return "metric_floor"
        self.current = name
        self._keep_best()
        self._save_state()
        return None

    def _final_finetune(self) -> tuple[str, dict[str, Any]]:
        final_row = next(r for r in reversed(self.rows) if r["iteration"] == self.best_iteration)
        if not self.config.final_finetune or self.finetune_fn is None:
            return self.current, final_row
        seed_everything(self.config.seed, "final")
        self.model.zero_grad(set_to_none=True)
        steps = self._finetune(self.config.budget(final=True))
        self.steps_done += steps
        metrics = self._evaluate()
        row, weights = self._row(
            "final",
            ranking_batches=0,
            removed=0,
            removed_total=self.removed_total,
            finetune=self._finetune_text(self.config.budget(final=True), steps),
            metrics=metrics,
            accepted=True,
            pruned_fraction=final_row.get("pruned_fraction"),
        )
        self._record("final", row, weights, Plan())
        return "final", row

    def _result(self, reason: str, final_row: dict[str, Any]) -> RunResult:
        return RunResult(
            model=self.model,
            plan=self.plan,
            rows=self.rows,
            stop_reason=reason,
            best_iteration=self.best_iteration,
            run_dir=self.rundir.path if self.rundir is not None else None,
            final_row=final_row,
        )

    def run(self, *, resume: bool = False) -> RunResult:
        """Run (or with ``resume=True`` continue) the loop until a stop condition holds."""
        if self.rundir is not None and self.rundir.exists() and not resume:
            raise ConfigError(
                f"run folder {str(self.rundir.path)!r} already holds a run; resume it "
                "(resume=True / --resume) or choose a new folder"
            )
        if resume and self.rundir is not None and self.rundir.exists():
            done = self._resume()
            if done is not None:
                return done
        else:
            self._start()
        bar = self._bar()
        try:
            i = self.iteration + 1
            while True:
                reason, removal = self._stop_before(i)
                if reason is None:
                    reason = self._iterate(i, removal)
                    self._log(bar)
                if reason is not None:
                    break
                i += 1
        finally:
            if bar is not None:
                bar.close()
        logger.info("stopped: %s", STOP_REASONS[reason])
        final, final_row = self._final_finetune()
        self._save_state(finished=True, stop_reason=reason, final=final)
        return self._result(reason, final_row)

    def _bar(self) -> Any:
        if not self.progress:
            return None
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return None
        return tqdm(
            total=self.config.max_iterations,
            initial=self.iteration,
            desc="pruning",
            unit="iter",
            leave=False,
        )

    def _log(self, bar: Any) -> None:
        row = self.rows[-1]
        shown = {k: f"{v:.4g}" for k, v in (row.get("metrics") or {}).items()}
        logger.info(
            "iteration %s: removed %d (total %d), %s MACs, metrics %s",
            row["iteration"],
            row["removed"],
            row["removed_total"],
            row["macs"],
            shown,
        )
        if bar is not None:
            bar.update(1)
            bar.set_postfix(removed=row["removed_total"], **shown)


def run_pruning(
    model: nn.Module,
    example_inputs: Any,
    *,
    config: PruneConfig,
    finetune: FinetuneFn | None = None,
    evaluate: EvaluateFn | None = None,
    batches: BatchesFn | None = None,
    loss_fn: Callable[[Any, Any], torch.Tensor] | None = None,
    run_dir: str | Path | None = None,
    resume: bool = False,
    base_plan: Plan | None = None,
    progress: bool = True,
) -> RunResult:
    """Prune ``model`` iteratively: rank/remove, finetune, evaluate, until a stop condition.

    Args:
        model: The model to prune. It is changed in place; use ``result.model`` afterwards (it is
            a different object when a metric floor rolled back to the last good iteration).
        example_inputs: A tensor (e.g. ``(1, 3, H, W)``) or tuple of inputs for tracing and for
            counting MACs (MACs are for this batch).
        config: The run's :class:`PruneConfig`.
        finetune: ``finetune(model, start_step, budget) -> steps_done``: train ``model`` in place
            for ``budget`` (:class:`Budget`: ``budget.steps`` or ``budget.epochs``);
            ``start_step`` is the number of steps done so far in the run. Build the optimizer
            inside the callback, every call: pruning replaces the parameters.
        evaluate: ``evaluate(model) -> {"metric": value}``; called on the starting model too.
        batches: ``batches() -> iterable of (inputs, targets)``, fresh on each call; the first
            ``config.ranking_batches`` feed a data-driven criterion such as ``"taylor"``.
        loss_fn: ``loss_fn(model_output, targets) -> scalar loss`` for data-driven criteria.
        run_dir: Checkpoint folder (see :mod:`filterprune.loop.checkpoint`); ``None`` keeps
            everything in memory.
        resume: Continue the run in ``run_dir`` after its last completed iteration. ``model``
            must be the same starting model (architecture) as in the first call.
        base_plan: The plan already applied to ``model`` from its original architecture (e.g.
            a U-Net built from a channel list), so saved plans rebuild from the original.
        progress: Show a tqdm progress bar over iterations.

    Returns:
        A :class:`RunResult`.
    """
    loop = PruningLoop(
        model,
        example_inputs,
        config=config,
        finetune=finetune,
        evaluate=evaluate,
        batches=batches,
        loss_fn=loss_fn,
        run_dir=run_dir,
        base_plan=base_plan,
        progress=progress,
    )
    return loop.run(resume=resume)
