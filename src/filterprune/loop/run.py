"""The iterative pruning loop: rank and remove -> finetune -> evaluate -> record, until a stop.

One iteration calls :func:`filterprune.prune` once (ranking and removal in one pass), then the
user's ``finetune`` callback, then ``evaluate``, and records one row: iteration, ranking batches,
channels removed (this iteration and in total), finetuning done, metrics, params, MACs,
checkpoint size and optionally latency. Row 0 is the starting model, evaluated.

Surgery replaces the pruned parameters with new ``nn.Parameter`` objects, so the ``finetune``
callback must build its optimizer (and any LR scheduler) on every call from
``model.parameters()``; an optimizer kept across iterations would update stale tensors.

Under ``torch.distributed`` (DDP, torchrun) every rank runs the loop on its own data shard and
takes the same steps; see :mod:`filterprune.loop.replicas` and ``docs/distributed.md``.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._progress import log_to_stderr
from .._progress import progress as show_progress
from ..api import analyze, count, prune
from ..config import Budget, ConfigError, PruneConfig
from ..config.recipe import data_free_criterion
from ..criteria import get_criterion
from ..graph.groups import DependencyGraph
from ..measure._forward import as_input_tuple
from ..measure.latency import busy
from ..measure.machine import machine_info
from ..plan import Plan
from ..store.lock import run_lock
from ..store.rundir import RunDir
from ..store.weights import state_dict_bytes
from .describe import write_model_description
from .layers import channel_groups, ignored_layers
from .limits import goal_fraction, short_step_warning, start_warnings
from .persist import RunRecord
from .replicas import Replicas
from .result import RunResult
from .state import LoopState, seed_everything
from .stop import (
    FLOOR,
    STOP_REASONS,
    TABLE,
    Guard,
    StepAmount,
    check_finite,
    collapse_guard,
    far_below_goal,
    max_removable,
    metric_ok,
    metric_threshold,
    paced_amount,
    plan_removal,
    targets_reached,
    undecided_latency,
    unmet_targets,
)

__all__ = ["PruningLoop", "run_pruning"]

#: Seconds of clean-block timing for the start's check that a latency goal is within reach
REACH_SECONDS = 1.0
#: Share of the thinned copy's speed-up the start's advice asks for: runs that stopped at the
#: maximum pruned fraction reached 0.79-0.98 of it (docs/benchmarks.md, "A machine too busy")
REACH_MARGIN = 0.85
#: The most a copy is thinned for that check (a per-group Selection removes less than all)
MAX_REACH_FRACTION = 0.999

logger = logging.getLogger("filterprune.loop")

#: A latency target too spread to decide is timed again at most this many times.
MAX_REMEASURES = 2
FinetuneFn = Callable[[nn.Module, int, Budget], "int | None"]
EvaluateFn = Callable[[nn.Module], Mapping[str, float]]
BatchesFn = Callable[[], Iterable[Any]]
LossFn = Callable[[Any, Any], torch.Tensor]


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


def _reachable_advice(best: float, max_pruned_fraction: float | None = None) -> str:
    """What to ask for instead of a latency goal the thinned copy's speed-up ``best`` misses:
    :data:`REACH_MARGIN` of it, since a run ranks its own layout and ends below the copy; and
    more pruning where the run's ``max_pruned_fraction`` (``None``: already all) allows it."""
    safe = best * REACH_MARGIN
    percent = math.floor(100 * (1 - 1 / safe)) if safe > 1 else 0
    if percent < 1:
        return (
            "Removing channels does not make this model much faster on this machine: prune for "
            "size (--target macs=... or params=...) instead, or time another batch size "
            "(--latency-batch-sizes)"
        )
    more = ""
    if max_pruned_fraction is not None:
        more = f", or allow more pruning (--max-pruned-fraction, now {max_pruned_fraction:g})"
    return (
        f"Ask for less: --target latency=-{percent}% is {REACH_MARGIN:.0%} of that figure (runs "
        f"that stopped at the maximum pruned fraction reached 79-98 % of it){more}"
    )


def _finetune_text(budget: Budget, steps: int) -> str:
    counted = f"{steps} step" + ("" if steps == 1 else "s")
    return f"{budget} ({counted})" if budget.unit == "epochs" else counted


class PruningLoop(RunRecord):
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
        loss_fn: LossFn | None = None,
        run_dir: str | Path | None = None,
        base_plan: Plan | None = None,
        progress: bool = True,
    ) -> None:
        if not isinstance(config, PruneConfig):
            raise TypeError(f"config must be a PruneConfig, got {type(config).__name__}")
        has_data = batches is not None and loss_fn is not None
        criterion_name = data_free_criterion(config.ranking, None, has_data)
        if criterion_name is not None:  # the recipe's Taylor needs data: the one departure
            config = config.replace(criterion=criterion_name)
        for name, value in (
            ("finetune", config.finetune),
            ("final_finetune", config.final_finetune),
        ):
            if value and finetune is None:
                raise ConfigError(
                    f"PruneConfig.{name}={value} needs a finetune callback "
                    f"(model, start_step, budget) -> steps; pass finetune=... or set {name}=0"
                )
        if config.watches_metric and evaluate is None:
            raise ConfigError("a metric floor needs an evaluate callback (model) -> dict")
        criterion = get_criterion(config.ranking.criterion, **config.ranking.options)
        self.needs_data = bool(getattr(criterion, "needs_data", False))
        if self.needs_data and (batches is None or loss_fn is None):
            raise ConfigError(
                f"criterion {config.criterion!r} ranks with data: pass batches=(callable "
                "returning an iterable of (inputs, targets)) and loss_fn=(output, target) -> loss"
            )
        self.config = config
        self.device = torch.device(config.device)
        self.replicas = Replicas(model)  # under DDP: the unwrapped module, rank 0's decisions
        self.model = self.replicas.module(model).to(self.device)
        self.example = _to_device(example_inputs, self.device)
        self.finetune_fn, self.evaluate_fn = finetune, evaluate
        self.batches_fn, self.loss_fn = batches, loss_fn
        self.rundir = RunDir(run_dir) if run_dir is not None else None
        self.progress = progress
        self.ignore = ignored_layers(self.model, config)
        self.state = LoopState(plan=base_plan or Plan())
        self.best: tuple[nn.Module | None, LoopState] | None = None
        self.threshold: float | None = None
        self.guard: Guard | None = None  # PruneConfig.collapse_ratio, without a metric bound
        self._graph: Any = None  # dependency graph of the current model, kept up to date
        self.divergence: str | None = None  # what a NaN/inf finetuning reported
        self.collapse: str | None = None  # what the collapse guard saw
        self.original: nn.Module | None = None  # the starting model, timed beside each iteration
        self._table: Any = None  # the latency lookup table of widths="measured" (one per run)

    # ----- measurement -----------------------------------------------------------------------
    def _analyze(self) -> DependencyGraph:
        """The model's graph as it is now, under the run's layer selection and grouped mode."""
        return analyze(
            self.model, self.example, ignore=self.ignore, grouped=self.config.removal.grouped
        )

    def _evaluate(self) -> dict[str, float]:
        if self.evaluate_fn is None:
            return {}
        metrics = self.evaluate_fn(self.model)
        if not isinstance(metrics, Mapping):
            raise TypeError(
                "the evaluate callback must return a dict name -> number, got "
                f"{type(metrics).__name__}"
            )
        return self.replicas.shared({str(k): float(v) for k, v in metrics.items()})

    def _row(self, iteration: int | str, **fields: Any) -> tuple[dict[str, Any], bytes]:
        if not self.replicas.main:  # rank 0's row (metrics, latency, decisions) is everyone's
            return self.replicas.shared(None), b""
        counts = count(self.model, self.example)
        weights = state_dict_bytes(self.model)
        row: dict[str, Any] = {"iteration": iteration, **fields}
        row.update(params=counts.params, macs=counts.macs, size_mb=len(weights) / 1e6)
        if self.config.needs_latency:
            from ..measure import compare_latencies, latency_fields

            # side by side with the original, in alternating rounds (row 0: the original
            # against itself, which shows the noise of the machine)
            original = self.original if self.original is not None else self.model
            timed = compare_latencies(original, self.model, self.example, self.config.latency)
            row.update(latency_fields(timed, self.model))
            if self.config.removal.widths == "measured" or self._latency_goal():
                predicted = self._table_speedup(original)
                if predicted is not None:
                    row["table_speedup"] = predicted
            if (
                iteration == "final" and self._latency_goal() and busy(row.get("latency_flags"))
            ):  # a busy machine's final figure: the report adds what clean blocks read
                self._floor_fields(row)
        if self._graph is None:
            self._graph = self._analyze()
        row["channels"] = channel_groups(self._graph)  # each channel once, by its producers
        return self.replicas.shared(row), weights

    # ----- the latency lookup table (widths="measured") --------------------------------------
    def _timed_example(self, batch_size: int | None = None) -> Any:
        """The example at a timed batch size (default the first: what the target times) and
        the timed input size."""
        from ..measure.latency import _batched
        from ..measure.latency_config import _timed_input

        cfg = self.config.latency
        inputs = as_input_tuple(_timed_input(self.example, cfg.input_size))
        return _batched(inputs, batch_size or cfg.batch_sizes[0])

    def _latency_table(self) -> Any:
        if self._table is None:
            from ..measure.latency_table import LatencyTable

            self._table = LatencyTable(threads=self.config.latency.threads)
        return self._table

    def _width_chooser(self) -> Any:
        """Chooses widths on this machine's latency staircases, at every batch size timed
        (``--latency-batch-sizes``), the first being the one the target is judged on."""
        from ..measure.staircase import StaircaseWidths

        more = [self._timed_example(b) for b in self.config.latency.batch_sizes[1:]]
        return StaircaseWidths(
            self.model, self._timed_example(), self._latency_table(), more_examples=more
        )

    def _latency_goal(self) -> bool:
        return any(t.quantity == "latency" and t.reduction for t in self.config.targets)

    def _table_speedup(self, original: nn.Module) -> float | None:
        """The speed-up the lookup table predicts (its conv and linear layers, summed), reported
        beside the measured one so that the table's error is seen each iteration."""
        from ..measure.latency_table import layer_shapes

        table, timed = self._latency_table(), self._timed_example()
        before = table.predict_ms(layer_shapes(original, timed))
        after = table.predict_ms(layer_shapes(self.model, timed))
        table.save()
        return before / after if after > 0 and before > 0 else None

    def _times_on_cpu(self) -> bool:
        """Whether the target's timing (the first latency device) and the model are on the CPU,
        where :func:`~filterprune.measure.floor_speedup` can time clean blocks."""
        from ..measure._forward import model_device

        devices = self.config.latency.available_devices()
        return bool(devices) and devices[0].type == "cpu" and model_device(self.model).type == "cpu"

    def _floor_fields(
        self, row: dict[str, Any], model: nn.Module | None = None, seconds: float | None = None
    ) -> float | None:
        """Time the current model beside the original in short blocks and keep each one's
        fastest unpreempted block (:func:`~filterprune.measure.floor_speedup`); the speed-up
        goes into ``row`` (``floor_speedup``, ``floor_clean_blocks``, ``floor_blocks``).
        ``None`` off the CPU or when too few blocks ran uninterrupted."""
        from ..measure.latency import floor_speedup

        cfg = self.config.latency
        if not self._times_on_cpu():
            return None
        original = self.original if self.original is not None else self.model
        batch = self._timed_example()
        extra = {} if seconds is None else {"seconds": seconds}
        floor = floor_speedup(original, model if model is not None else self.model, batch,
                              batch_size=cfg.batch_sizes[0], threads=cfg.threads,
                              **extra)  # fmt: skip
        row.update(floor_clean_blocks=list(floor.clean_blocks), floor_blocks=list(floor.blocks))
        if floor.speedup is None:
            return None
        row["floor_speedup"] = floor.speedup
        if model is not None:  # the start's check also needs the copy's own time
            row["floor_model_ms"] = floor.model_ms
        return floor.speedup

    def _check_latency_reach(self) -> None:
        """Warn before the first step when a latency goal looks out of reach: a copy with every
        group thinned alike to the run's maximum pruned fraction (L1, widths as ranked), timed
        beside the original by its fastest unpreempted blocks, is not as fast as the goal.

        Advice only: where the copy cannot be made or timed (a model the CPU floor does not
        time, a selection that fails on the copy) the run goes on and says so at info level."""
        cfg = self.config
        goals = [1.0 / (1.0 - t.reduction) for t in cfg.targets
                 if t.quantity == "latency" and t.reduction]  # fmt: skip
        bounds = [t.at_most for t in cfg.targets if t.quantity == "latency" and t.at_most]
        if not (goals or bounds) or self.original is None or cfg.max_pruned_fraction <= 0:
            return
        if not self._times_on_cpu():
            return  # the floor times CPU blocks only
        fraction = min(cfg.max_pruned_fraction, MAX_REACH_FRACTION)  # a Selection takes < 1
        widths = (
            f"every layer at {1 - fraction:.0%} of its channels"
            if fraction < MAX_REACH_FRACTION
            else f"every layer at its minimum width (--min-channels {cfg.min_channels})"
        )
        logger.info(
            "timing a copy with %s (--max-pruned-fraction %g) to see whether %s is within reach",
            widths,
            cfg.max_pruned_fraction,
            ", ".join(str(t) for t in cfg.targets if t.quantity == "latency"),
        )
        try:
            thinned = copy.deepcopy(self.original)
            selection = dataclasses.replace(
                cfg.removal.selection(fraction, "per_group"), widths="any"
            )
            prune(thinned, self.example, selection=selection, criterion="l1", ignore=self.ignore)
            row: dict[str, Any] = {}
            best = self._floor_fields(row, model=thinned, seconds=REACH_SECONDS)
        except Exception as exc:  # advice only: the run itself reports its own errors
            logger.info("could not check whether the latency goal is within reach: %s", exc)
            return
        if best is None:
            return
        scope = (
            f"with {widths} (the most --max-pruned-fraction={cfg.max_pruned_fraction:g} "
            f"allows) the model runs {best:.2f}x faster than the original (each one's fastest "
            f"unpreempted block, batch {cfg.latency.batch_sizes[0]}); the run will likely stop "
            "at the maximum pruned fraction short of it. The time left is in what pruning does "
            "not shrink (the ops between the layers, per-call overhead)"
        )
        more = fraction < MAX_REACH_FRACTION
        if goals and best < max(goals):
            logger.warning(
                "a %.2fx speed-up looks out of reach on this machine: %s. %s",
                max(goals),
                scope,
                _reachable_advice(best, cfg.max_pruned_fraction if more else None),
            )
        thinned_ms = row.get("floor_model_ms")
        if bounds and thinned_ms is not None and thinned_ms > min(bounds):
            logger.warning(
                "latency<=%g ms looks out of reach on this machine: the thinned copy's fastest "
                "unpreempted call takes %.3g ms; %s. Ask for a larger bound (latency<=%.2g) or "
                "time another batch size (--latency-batch-sizes)",
                min(bounds),
                thinned_ms,
                scope,
                thinned_ms / REACH_MARGIN,
            )

    def _finetune(self, budget: Budget) -> int:
        if budget.amount <= 0 or self.finetune_fn is None:
            return 0
        model = self.replicas.for_training(self.model)  # a DDP wrapper under torch.distributed
        epochs = budget.unit == "epochs"
        start = self.state.epochs_done if epochs else self.state.steps_done  # in budget's unit
        done = self.replicas.shared(self.finetune_fn(model, start, budget))
        self.state.epochs_done += budget.amount if epochs else 0
        self.replicas.sync(self.model)  # BatchNorm statistics followed each rank's own batches
        if done is None:
            return 0
        if isinstance(done, bool) or not isinstance(done, int) or done < 0:
            raise TypeError(
                "the finetune callback must return the number of steps it did (an int >= 0), "
                f"got {done!r}"
            )
        self.state.steps_done += done
        return done

    def _finetune_checked(self, budget: Budget, where: str) -> int | None:
        """Finetune, then check the weights are finite; ``None`` after a NaN/inf.

        On a NaN/inf loss or weights the model rolls back to the last good one and
        ``self.divergence`` says where; the run then stops with ``"non_finite"``.
        """
        try:
            steps = self._finetune(budget)
            check_finite(self.model)
        except FloatingPointError as exc:
            self.divergence = f"{where}: {' '.join(str(exc).split())}"
            logger.info("finetuning diverged in %s", self.divergence)
            self._roll_back()
            return None
        return steps

    # ----- start / resume --------------------------------------------------------------------
    def _keep_original(self) -> None:
        """A copy of the starting model for side-by-side latency (only when latency is timed)."""
        if self.config.needs_latency and self.replicas.main:
            self.original = copy.deepcopy(self.model).eval()

    def _start(self) -> None:
        self.replicas.sync(self.model)  # start from rank 0's weights, as DDP would
        self._keep_original()
        self._graph = self._analyze()
        self.state.base_total = sum(g.size for g in self._graph.prunable)
        if self.replicas.main:  # say now what the settings cannot do
            for warning in start_warnings(self.config, [g.size for g in self._graph.prunable]):
                logger.warning("%s", warning)
            self._check_latency_reach()
        seed_everything(self.config.seed, 0)
        if self.evaluate_fn is not None and self.replicas.main:
            logger.info("evaluating the starting model")
        metrics = self._evaluate()
        self.threshold = metric_threshold(self.config, metrics)
        self.guard = collapse_guard(self.config, metrics)
        bound = {}
        if self.threshold is not None:  # for the report's plots: the worst accepted value
            bound = {"metric_bound": {"metric": self.config.metric, "value": self.threshold}}
        row, weights = self._row(
            0,
            ranking_batches=0,
            removed=0,
            removed_total=0,
            metrics=metrics,
            pruned_fraction=0.0,
            accepted=True,
            machine=machine_info(),  # where the run (and its timing) happened
            **bound,
        )
        if self.rundir is not None and self.replicas.main:
            self.rundir.path.mkdir(parents=True, exist_ok=True)
            self.rundir.write_config(self.config.to_json())
            write_model_description(self.rundir.path, self.model, self.example, self.state.plan)
        self._record(self.state.current, row, weights, Plan())
        self._keep_best()
        self._save_state()

    # ----- one iteration ---------------------------------------------------------------------
    def _settle_latency(self) -> None:
        """Time the current model again, with twice the rounds each time, while a latency
        target cannot be decided from its speed-up rounds (at most :data:`MAX_REMEASURES`).

        Not while the lookup table puts the model far below every goal (:func:`far_below_goal`):
        there the next step is the same whatever the timing says, and on a busy machine each
        timing again costs longer than the step."""
        cfg = self.config
        if not any(t.quantity == "latency" and t.reduction for t in cfg.targets):
            return
        row = self.state.current_row
        latency, tries = cfg.latency, 0
        if self.replicas.main:
            from ..measure import compare_latencies, latency_fields

            far = far_below_goal(cfg, row)
            while undecided_latency(cfg, row) and tries < MAX_REMEASURES and not far:
                tries += 1
                latency = dataclasses.replace(latency, rounds=latency.rounds * 2)
                logger.info(
                    "speed-up %.2fx is too spread to decide %s: timing again with %d rounds",
                    row.get("speedup") or 0.0,
                    ", ".join(str(t) for t in undecided_latency(cfg, row)),
                    latency.rounds,
                )
                original = self.original if self.original is not None else self.model
                timed = compare_latencies(original, self.model, self.example, latency)
                row.update(latency_fields(timed, self.model))
            if undecided_latency(cfg, row):
                low, high = min(row["round_speedups"]), max(row["round_speedups"])
                flags = ", ".join(row.get("latency_flags") or ()) or "no flags"
                floor = None if far else self._floor_fields(row)
                if floor is not None:
                    row["latency_decided_by"] = FLOOR
                    decides = (
                        f"each model's fastest unpreempted block ({floor:.2f}x, from "
                        f"{row['floor_clean_blocks'][1]} and {row['floor_clean_blocks'][0]} "
                        "clean blocks of the model and the original)"
                    )
                elif row.get("table_speedup"):
                    row["latency_decided_by"] = TABLE
                    decides = f"the lookup table's prediction ({row['table_speedup']:.2f}x)"
                else:
                    decides = f"the median ({row['speedup']:.2f}x)"
                logger.warning(
                    "this machine is too noisy to decide %s: after %s the speed-up "
                    "rounds span %.2f-%.2fx (%s); %s decides",
                    ", ".join(str(t) for t in undecided_latency(cfg, row)),
                    "1 timing" if tries == 0 else f"{tries + 1} timings",
                    low,
                    high,
                    flags,
                    decides,
                )
        shared = self.replicas.shared(row if self.replicas.main else None)
        if shared is not row:
            row.clear()
            row.update(shared)
        if tries and self.rundir is not None and self.replicas.main:
            self.rundir.write_log(self.state.rows)

    def _check_before(self, i: int) -> tuple[str | None, StepAmount | None]:
        """Stop checks made before iteration ``i`` removes anything: (reason, planned)."""
        cfg, state = self.config, self.state
        self._settle_latency()
        if targets_reached(cfg, state.rows[0], state.current_row):
            return "target_reached", None
        if cfg.max_iterations is not None and i > cfg.max_iterations:
            return "max_iterations", None
        amount = cfg.amount_for(i)
        if amount is None:
            return "schedule_done", None
        paced = paced_amount(cfg, state.rows, amount)
        if paced != amount:
            logger.info(
                "a step of %.3g would go past the latency goal: removing %.3g this iteration",
                amount,
                paced,
            )
            amount = paced
        remaining = max_removable(state.base_total, cfg.max_pruned_fraction) - state.removed_total
        if remaining <= 0:
            return "max_pruned_fraction", None
        if self._graph is None:
            self._graph = self._analyze()
        prunable = sum(g.size for g in self._graph.prunable)
        planned = plan_removal(
            amount, cfg.scope_for(amount), prunable=prunable, remaining=remaining
        )
        return ("nothing_left", None) if planned is None else (None, planned)

    def _prune(self, planned: StepAmount) -> tuple[Plan, int]:
        cfg = self.config
        context: dict[str, Any] = {}
        counted = None
        if self.needs_data:
            counted = _Counted(itertools.islice(self.batches_fn(), cfg.ranking.batches))
            context = {"batches": counted, "loss_fn": self.loss_fn, "device": self.device}
        self._scores: dict[str, torch.Tensor] = {}  # saved with the checkpoint, for the report
        step = prune(
            self.model,
            self.example,
            selection=cfg.removal.selection(planned.fraction, planned.scope),
            ranking=cfg.ranking,
            graph=self._graph,  # prune() updates it to follow the removal
            scores_out=self._scores,
            width_chooser=self._width_chooser() if cfg.removal.widths == "measured" else None,
            **context,
        )
        return step, counted.count if counted is not None else 0

    def _iterate(self, i: int, planned: StepAmount) -> str | None:
        cfg, state = self.config, self.state
        started = time.perf_counter()
        seed_everything(cfg.seed, i)
        self.model.zero_grad(set_to_none=True)
        if self._graph is None:
            self._graph = self._analyze()
        prunable = sum(g.size for g in self._graph.prunable)
        step, ranked = self._prune(planned)
        if planned.scope == "global" and self.replicas.main:  # name what held it back
            asked = math.floor(planned.fraction * prunable + 1e-9)
            short = short_step_warning(cfg, i, asked, step.num_removed, planned.fraction)
            if short is not None:
                logger.warning("%s", short)
        self.replicas.check(step)  # under DDP: every rank removed the same channels
        self.replicas.forget()  # new parameters: finetuning gets a new DDP wrapper
        if step.num_removed == 0:
            return "max_pruned_fraction" if planned.clipped else "nothing_left"
        state.removed_total += step.num_removed
        state.plan, state.run_plan = state.plan.then(step), state.run_plan.then(step)
        steps = 0
        recovered = 0
        while True:  # finetune; then, while rejected, up to ``recovery`` more rounds
            where = f"iteration {i}" + (f" (recovery {recovered})" if recovered else "")
            done = self._finetune_checked(cfg.budget(), where)
            if done is None:
                return "non_finite"
            steps += done
            metrics = self._evaluate()
            accepted = self._acceptable(metrics)
            if recovered >= cfg.recovery or self.replicas.shared(accepted):
                break
            recovered += 1  # more finetuning before rejecting (PruneConfig.recovery)
        extra = {"recovery": recovered} if cfg.recovery else {}
        if self.needs_data and ranked < cfg.ranking_batches:  # never shrink silently
            extra["ranking_batches_asked"] = cfg.ranking_batches
            logger.warning(
                "iteration %d ranked on %d of the %d ranking batches asked for: the data ran out "
                "(use more data or a smaller batch size, or lower ranking_batches)",
                i,
                ranked,
                cfg.ranking_batches,
            )
        state.iteration = i
        name = RunDir.iteration_name(i)
        row, weights = self._row(
            i,
            ranking_batches=ranked,
            removed=step.num_removed,
            removed_total=state.removed_total,
            finetune=_finetune_text(cfg.budget(), steps)
            + (f" (with {recovered} recovery)" if recovered else ""),
            metrics=metrics,
            pruned_fraction=state.removed_total / state.base_total if state.base_total else 0.0,
            amount=planned.fraction,
            scope=planned.scope,
            accepted=accepted,
            seconds=round(time.perf_counter() - started, 3),
            **extra,
        )
        accepted = row["accepted"]  # rank 0's decision under DDP
        self._record(name, row, weights, step, scores=self._scores)
        if accepted:
            state.current = name
            self._keep_best()
            self._save_state()
            return None
        self._roll_back(rejected=i)
        self._save_state()
        if self.guard is not None:
            self.collapse = f"iteration {i}: {self.guard.describe(metrics)}"
            logger.info("stopping: %s", self.collapse)
            return "metric_collapse"
        return "metric_floor"

    def _acceptable(self, metrics: Mapping[str, float]) -> bool:
        """Within the metric bound, or (without one) above the collapse guard."""
        if self.guard is not None:
            return self.guard.holds(metrics)
        return metric_ok(self.config, self.threshold, metrics)

    def _final_finetune(self) -> tuple[str, dict[str, Any]]:
        state = self.state
        if not self.config.budget(final=True).amount or self.finetune_fn is None:
            return state.current, state.current_row
        seed_everything(self.config.seed, "final")
        self.model.zero_grad(set_to_none=True)
        budget = self.config.budget(final=True)
        if self.replicas.main:
            kept = state.current_row.get("iteration")
            logger.info("final finetuning of the kept model (iteration %s): %s", kept, budget)
        steps = self._finetune_checked(budget, "the final finetuning")
        if steps is None:
            return self.state.current, self.state.current_row
        row, weights = self._row(
            "final",
            ranking_batches=0,
            removed=0,
            removed_total=state.removed_total,
            finetune=_finetune_text(budget, steps),
            metrics=self._evaluate(),
            pruned_fraction=state.current_row.get("pruned_fraction"),
            accepted=True,
        )
        # a new name: state.json may point to the previous final model until it is switched
        writes = self.rundir is not None and self.replicas.main
        name = self.replicas.shared(self.rundir.next_final_name() if writes else "final")
        self._record(name, row, weights, Plan())
        return name, row

    def _result(self, reason: str, final_row: dict[str, Any]) -> RunResult:
        return RunResult(
            model=self.model,
            plan=self.state.plan,
            rows=self.state.rows,
            stop_reason=reason,
            best_iteration=self.state.best_iteration,
            run_dir=self.rundir.path if self.rundir is not None else None,
            final_row=final_row,
            stop_detail=self._stop_detail(reason, final_row),
        )

    def _limit_note(self, reason: str) -> str:
        """Which setting stopped a run short of its maximum pruned fraction."""
        goal, base = goal_fraction(self.config), self.state.base_total
        done = self.state.removed_total / base if base else 0.0
        if reason != "max_iterations" or goal is None or done + 1e-9 >= goal:
            return ""
        return (
            f" (max_iterations={self.config.max_iterations}, --max-iterations, stopped the run "
            f"at {done:.0%} of the prunable channels, short of max_pruned_fraction={goal:g})"
        )

    def _stop_detail(self, reason: str, final_row: dict[str, Any]) -> str | None:
        if reason == "non_finite":
            return self.divergence
        details = []
        if reason == "metric_collapse" and self.collapse:
            details.append(f"{self.collapse} (rejected; the last good model was kept)")
        elif self.guard is not None and not self.guard.holds(final_row.get("metrics") or {}):
            details.append(f"the final model's {self.guard.describe(final_row['metrics'])}")
        missed = unmet_targets(self.config, self.state.rows[0], final_row)
        if reason != "target_reached" and missed:
            details.append(f"targets not reached: {', '.join(missed)}")
        return "; ".join(details) or None

    # ----- the loop --------------------------------------------------------------------------
    def run(self, *, resume: bool = False) -> RunResult:
        """Run (or with ``resume=True`` continue) the loop until a stop condition holds.

        The run folder is locked for the whole run (:func:`filterprune.store.lock.run_lock`):
        a second writer is refused with :class:`~filterprune.store.lock.RunLockedError`.
        """
        if self.rundir is None:
            return self._run(resume=resume)
        with run_lock(self.rundir.path, enabled=self.replicas.main):
            return self._run(resume=resume)

    def _run(self, *, resume: bool) -> RunResult:
        # rank 0's view: it may create the folder before another rank looks
        existing = self.replicas.shared(self.rundir is not None and self.rundir.exists())
        if existing and not resume:
            raise ConfigError(
                f"run folder {str(self.rundir.path)!r} already holds a run; resume it "
                "(resume=True / --resume) or choose a new folder"
            )
        if existing:
            done = self._resume()
            if done is not None:
                return done
        else:
            self._start()
        bar = self._bar()
        try:
            i = self.state.iteration + 1
            while True:
                reason, planned = self.replicas.shared(self._check_before(i))
                if reason is None:
                    reason = self._iterate(i, planned)
                    if reason != "non_finite":
                        self._log(bar)
                if reason is not None:
                    break
                i += 1
        finally:
            if bar is not None:
                bar.close()
        if self.replicas.main:
            logger.info("stopped: %s%s", STOP_REASONS[reason], self._limit_note(reason))
        if reason == "non_finite":
            final, final_row = self.state.current, self.state.current_row
        else:
            final, final_row = self._final_finetune()
            reason = "non_finite" if self.divergence else reason
        self._save_state(finished=True, stop_reason=reason, final=final)
        self.replicas.forget()
        return self._result(reason, final_row)

    def _bar(self) -> Any:
        return show_progress(
            enabled=self.progress and self.replicas.main,
            total=self.config.max_iterations,
            initial=self.state.iteration,
            desc="pruning",
            unit="iter",
            lines=False,  # off a terminal each iteration logs its own line
        )

    def _log(self, bar: Any) -> None:
        if not self.replicas.main:
            return
        row = self.state.rows[-1]
        shown = {k: f"{v:.4g}" for k, v in (row.get("metrics") or {}).items()}
        logger.info(
            "iteration %s: removed %d (total %d), %d MACs, %s%s",
            row["iteration"],
            row["removed"],
            row["removed_total"],
            row["macs"],
            shown,
            "" if row["accepted"] else " -- below the metric floor, rejected",
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
    loss_fn: LossFn | None = None,
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
            for ``budget`` (a :class:`Budget`: ``budget.steps`` or ``budget.epochs`` is set);
            ``start_step`` is the finetuning done so far in the run, in the budget's unit:
            steps, or epochs with ``finetune_unit="epochs"``. Build the optimizer
            inside the callback, on every call: pruning replaces the parameters.
        evaluate: ``evaluate(model) -> {"metric": value}``; also called on the starting model.
        batches: ``batches() -> iterable of (inputs, targets)``, fresh on each call; the first
            ``config.ranking_batches`` feed a data-driven criterion such as ``"taylor"``.
        loss_fn: ``loss_fn(model_output, targets) -> scalar loss`` for data-driven criteria.
        run_dir: Checkpoint folder (see :mod:`filterprune.store` for its layout); ``None`` keeps
            everything in memory.
        resume: Continue the run in ``run_dir`` after its last completed iteration (a new run if
            ``run_dir`` holds none). ``model`` must be the same starting model as the first time.
        base_plan: The plan that already turned the original architecture into ``model`` (e.g.
            a U-Net built from a channel list), so that saved plans rebuild from the original.
        progress: Report progress on standard error: a tqdm bar over iterations on a terminal,
            and a line per iteration (the ``filterprune`` logger's INFO records, shown on
            standard error unless logging is configured). ``False``, or the environment variable
            ``FILTERPRUNE_PROGRESS=0``, turns both off.

    Returns:
        A :class:`RunResult`.

    Under ``torch.distributed`` (a process group is initialised, e.g. by torchrun), call this on
    every rank with the same arguments except the data: each rank's ``batches`` and ``finetune``
    use its own shard. ``model`` may be a ``DistributedDataParallel`` (its options are kept) or
    the plain module; the loop works on the unwrapped module and ``result.model`` is unwrapped.
    ``finetune`` receives a new ``DistributedDataParallel`` after every removal (so, again, build
    the optimizer from it on every call); afterwards rank 0's weights and buffers are copied to
    all ranks. ``config.ranking_batches`` counts per rank; the criterion all-reduces its
    statistics and every plan is checked across ranks. ``evaluate`` runs on every rank (so it
    may use collectives) and rank 0's metrics decide, as do rank 0's rows and stop decisions.
    Only rank 0 writes ``run_dir``, logs and shows progress; ``resume`` needs ``run_dir`` on a
    file system every rank can read. See ``docs/distributed.md``.
    """
    with log_to_stderr(progress):
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
