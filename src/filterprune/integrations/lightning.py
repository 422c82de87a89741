"""Filter pruning as a callback of a ``lightning.Trainer``: the model really shrinks while it trains.

Lightning's own ``ModelPruning`` callback masks weights, so nothing gets faster. :class:`FilterPruning`
removes whole filters between epochs with :func:`filterprune.prune`, then rebuilds the optimizers
and LR schedulers (by calling ``configure_optimizers`` again) so that training continues on the
smaller model::

    import lightning as L
    from filterprune.integrations.lightning import FilterPruning

    pruning = FilterPruning(amount=0.2, every_n_epochs=2, targets=["macs=-50%"])
    trainer = L.Trainer(max_epochs=10, callbacks=[pruning])
    trainer.fit(module, train_loader, val_loader)

How it works:

* **Ranking on the training data it sees.** With ``criterion="taylor"`` (Molchanov et al. 2017,
  arXiv 1611.06440) the feature maps of the real training steps of a pruning epoch are observed
  (their forward in the training step, their gradient in its backward); no extra passes run.
  Data-free criteria (``"l1"``, ``"l2"``, ``"kmeans"``, ...) need no observation at all.
* **Pruning** happens at the end of every ``every_n_epochs``-th training epoch (after that
  epoch's validation), until every target is met or ``max_prunings`` steps were taken.
* **Optimizers and schedulers** are built anew from the pruned parameters; each param group keeps
  its current hyperparameters (the learning rate a scheduler has reached) and each scheduler its
  state (its step count). Per-parameter optimizer state (momentum, Adam moments) starts afresh.
* **Logging**: every step logs ``prune/params``, ``prune/macs``, ``prune/removed`` and, with
  ``monitor``, that metric as it was before the removal, to every logger of the trainer.
* **Checkpoints**: a Lightning checkpoint of a pruned model holds the plan (``checkpoint
  ["filterprune"]``). When the trainer resumes from it (``trainer.fit(..., ckpt_path=...)``), the
  plan is applied to the freshly built model in the LightningModule's ``on_load_checkpoint``
  (the callback chains itself before the module's own), i.e. *before* the weights are loaded.
  Outside a trainer, call :func:`apply_checkpoint_plan` (e.g. in your LightningModule's
  ``on_load_checkpoint``, which makes ``MyModule.load_from_checkpoint(path)`` work).
* **DDP**: under Lightning's DDP strategy every rank observes its own shard, the Taylor statistics
  are all-reduced (as in the pruning loop, see :mod:`filterprune.distributed`), every rank
  computes the same plan, the plans are checked to agree, and the model is wrapped in a new DDP.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback
from torch import nn

from .._modes import restore_training, training_flags
from ..api import analyze, count, prune
from ..choose import unselected_layers
from ..config import Ranking, Selection
from ..config.recipe import resolve_scope
from ..config.target import Target
from ..criteria import get_criterion
from ..criteria.taylor import Taylor, TaylorTap, group_scores
from ..errors import ConfigError
from ..graph.groups import DependencyGraph
from ..parallel import check_same_plan, is_distributed
from ..plan import Plan

__all__ = ["FilterPruning", "apply_checkpoint_plan"]

logger = logging.getLogger(__name__)

CHECKPOINT_KEY = "filterprune"
_PLAN_ATTR = "_filterprune_plan"  # the plan applied to a network, kept on the network itself


def _network(pl_module: nn.Module, path: str | None) -> nn.Module:
    if not path:
        return pl_module
    try:
        net = pl_module.get_submodule(path)
    except AttributeError:
        raise ConfigError(
            f"FilterPruning(module={path!r}): {type(pl_module).__name__} has no submodule "
            f"{path!r}; pass the attribute that holds the network (e.g. 'model'), or None to "
            "prune the LightningModule itself"
        ) from None
    return net


def apply_checkpoint_plan(pl_module: nn.Module, checkpoint: Mapping[str, Any]) -> Plan | None:
    """Shrink a freshly built module to the architecture a pruned checkpoint holds.

    Call it before the checkpoint's weights are loaded, e.g. in your LightningModule::

        def on_load_checkpoint(self, checkpoint):
            apply_checkpoint_plan(self, checkpoint)

    It does nothing for a checkpoint without a plan, or when the module already has that plan
    (so the callback and the module may both call it).

    Args:
        pl_module: The LightningModule (or any module) the checkpoint was saved from.
        checkpoint: The loaded checkpoint dict (``torch.load(path, weights_only=True)``).

    Returns:
        The plan applied or already in place, or ``None`` when the checkpoint has none.
    """
    entry = checkpoint.get(CHECKPOINT_KEY) if isinstance(checkpoint, Mapping) else None
    if not entry or entry.get("plan") is None:
        return None
    plan = Plan.from_dict(entry["plan"], source=f"checkpoint['{CHECKPOINT_KEY}']['plan']")
    net = _network(pl_module, entry.get("module"))
    current = getattr(net, _PLAN_ATTR, None)
    if current is not None and current.to_dict() == plan.to_dict():
        return plan
    if current is not None:
        raise ConfigError(
            f"{type(net).__name__} was already pruned with another plan; build the model afresh "
            "before loading a pruned checkpoint into it"
        )
    from ..surgery import apply_plan

    apply_plan(net, plan)
    setattr(net, _PLAN_ATTR, plan)
    return plan


def _default_input(batch: Any) -> torch.Tensor:
    x = batch[0] if isinstance(batch, list | tuple) else batch
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"FilterPruning: cannot find the model input in a batch of type {type(batch).__name__}"
            "; pass input_fn=lambda batch: ... returning the network's input tensor"
        )
    return x


class FilterPruning(Callback):
    """Remove filters between epochs of a ``lightning.Trainer`` run; see the module docstring.

    What is removed and how it is ranked are the objects :func:`filterprune.prune` takes,
    ``selection`` (:class:`filterprune.Selection`) and ``ranking`` (:class:`filterprune.Ranking`),
    or their fields as flat keywords, which override the objects' fields. Unset, they are the
    default recipe's, as for every entry point (:mod:`filterprune.config.recipe`): a step
    removes 10 % of the convolution filters, ranked globally by Taylor scores (observed on the
    epoch's training steps) minus 0.1 times their MAC cost, at most 25 % of any layer.

    Args:
        selection: What each pruning step removes (amount, scope, limits, layer filters).
        ranking: How channels are scored: ``"taylor"`` (observed on the training steps of the
            pruning epoch; ``ranking.batches`` observes only the last this-many training
            batches of a pruning epoch, ``None`` all of them) or a data-free criterion
            (``"l1"``, ``"l2"``, ``"kmeans"``, ``"random"``).
        amount: Fraction of the channels removed at each pruning step (of each group with
            ``scope="per_group"``, of all prunable channels with ``scope="global"``).
        criterion: The criterion name (``ranking.criterion``).
        every_n_epochs: Prune at the end of every n-th training epoch.
        start_epoch: First epoch (0-based) whose end may prune.
        targets: Stop pruning once all are met: ``Target`` objects, dicts or strings such as
            ``"macs=-50%"`` or ``"params<=1M"`` (``macs`` and ``params`` only).
        max_prunings: Stop after this many pruning steps (``None``: until the targets are met;
            with neither, every ``every_n_epochs`` epochs until training ends).
        module: Attribute path of the network inside the LightningModule (``"model"``); ``None``
            prunes the LightningModule itself (its ``forward`` must run the network).
        input_fn: ``input_fn(batch) -> tensor``: the network's input in a training batch
            (default: the batch itself, or its first element). Used to trace and count.
        ranking_batches: ``ranking.batches``.
        monitor: A logged metric (``trainer.callback_metrics`` key) to log with every step.
        scope, round_to, min_channels, max_fraction, normalize, flops_reg, ignore,
        criterion_options: As in :func:`filterprune.prune`.
    """

    def __init__(
        self,
        *,
        selection: Selection | None = None,
        ranking: Ranking | None = None,
        amount: float | None = None,
        criterion: str | None = None,
        every_n_epochs: int = 1,
        start_epoch: int = 0,
        targets: Sequence[Target | Mapping[str, Any] | str] = (),
        max_prunings: int | None = None,
        module: str | None = None,
        input_fn: Callable[[Any], torch.Tensor] | None = None,
        ranking_batches: int | None = None,
        monitor: str | None = None,
        scope: str | None = None,
        round_to: int | None = None,
        min_channels: int | None = None,
        max_fraction: float | None = None,
        normalize: bool | None = None,
        flops_reg: float | None = None,
        ignore: Sequence[str] | None = None,
        criterion_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if amount is not None and not 0.0 < amount < 1.0:
            raise ConfigError(f"FilterPruning: amount must be a fraction in (0, 1), got {amount!r}")
        for name, value, low in (
            ("every_n_epochs", every_n_epochs, 1),
            ("start_epoch", start_epoch, 0),
            ("max_prunings", max_prunings, 1),
            ("ranking_batches", ranking_batches, 1),
        ):
            if value is not None and (not isinstance(value, int) or value < low):
                raise ConfigError(f"FilterPruning: {name} must be an int >= {low}, got {value!r}")
        #: What each pruning step removes, as :func:`filterprune.prune` takes it.
        self.selection = Selection.merged(
            selection,
            amount=amount,
            scope=scope,
            round_to=round_to,
            min_channels=min_channels,
            max_fraction=max_fraction,
        )
        if self.selection.amount <= 0:
            raise ConfigError("FilterPruning: amount must be a fraction in (0, 1), got 0")
        #: How each pruning step ranks the channels.
        self.ranking = Ranking.merged(
            ranking,
            criterion=criterion,
            options=criterion_options,
            normalize=normalize,
            flops_reg=flops_reg,
            batches=ranking_batches,
        )
        self.selection, self.ranking = resolve_scope(
            self.selection, self.ranking, owner="FilterPruning"
        )
        name = self.ranking.criterion
        self.criterion = get_criterion(name, **self.ranking.options)
        if getattr(self.criterion, "needs_data", False) and not isinstance(self.criterion, Taylor):
            raise ConfigError(
                f"FilterPruning: criterion {name!r} needs ranking passes of its own; the "
                "callback ranks with 'taylor' on the training steps, or with a data-free "
                "criterion ('l1', 'l2', 'kmeans', 'random')"
            )
        parsed = [Target.parse(t) if isinstance(t, str) else t for t in targets]
        parsed = [Target(**t) if isinstance(t, Mapping) else t for t in parsed]
        for t in parsed:
            if t.quantity not in ("macs", "params"):
                raise ConfigError(
                    f"FilterPruning: target {t} is not supported; use macs or params targets"
                )
        self.targets = tuple(parsed)
        self.every_n_epochs = every_n_epochs
        self.start_epoch = start_epoch
        self.max_prunings = max_prunings
        self.module = module
        self.input_fn = input_fn or _default_input
        self.monitor = monitor
        self.ignore = tuple(ignore or ())
        #: The plan applied so far, in the original model's numbering (``None`` before the first).
        self.plan: Plan | None = None
        #: The plan of the latest step alone, in the numbering before that step.
        self.last_plan: Plan | None = None
        #: One dict per pruning step: epoch, step, removed, params, macs (and the monitor).
        self.history: list[dict[str, Any]] = []
        self.original: dict[str, int] | None = None
        self._graph: DependencyGraph | None = None
        self._example: torch.Tensor | None = None
        self._tap: TaylorTap | None = None
        self._depth = 0
        self._handles: list[Any] = []
        self._done = False
        self._patched: LightningModule | None = None

    # ----- when to prune ------------------------------------------------------------------------
    def _prunes_at(self, epoch: int) -> bool:
        if self._done or epoch < self.start_epoch:
            return False
        if self.max_prunings is not None and len(self.history) >= self.max_prunings:
            return False
        return (epoch - self.start_epoch + 1) % self.every_n_epochs == 0

    def _targets_met(self, params: int, macs: int) -> bool:
        if not self.targets or self.original is None:
            return False
        now = {"params": params, "macs": macs}
        return all(t.reached(self.original[t.quantity], now[t.quantity]) for t in self.targets)

    # ----- checkpoints --------------------------------------------------------------------------
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        # Chain before the module's own on_load_checkpoint, which Lightning calls before it loads
        # the weights (the callbacks' on_load_checkpoint comes only after).
        if self._patched is pl_module:
            return
        own = pl_module.on_load_checkpoint

        def on_load_checkpoint(checkpoint: dict[str, Any]) -> None:
            plan = apply_checkpoint_plan(pl_module, checkpoint)
            if plan is not None:
                self.plan = plan
            own(checkpoint)

        pl_module.on_load_checkpoint = on_load_checkpoint  # type: ignore[method-assign]
        self._patched = pl_module

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._close()
        if self._patched is pl_module and "on_load_checkpoint" in vars(pl_module):
            del pl_module.on_load_checkpoint
        self._patched = None

    def on_save_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if self.plan is not None:
            checkpoint[CHECKPOINT_KEY] = {"plan": self.plan.to_dict(), "module": self.module}

    def state_dict(self) -> dict[str, Any]:
        return {"history": list(self.history), "original": self.original, "done": self._done}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))
        self.original = state_dict.get("original")
        self._done = bool(state_dict.get("done", False))

    # ----- observing the training steps -----------------------------------------------------------
    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        net = _network(pl_module, self.module)
        if self._graph is None:
            self._example = self.input_fn(batch)[:1].detach()
            unselected = unselected_layers(net, self.selection, owner="FilterPruning")
            self._graph = analyze(
                net,
                self._example,
                ignore=(*self.ignore, *unselected),
                grouped=self.selection.grouped,
            )
            if self.original is None:
                counts = count(net, self._example)
                self.original = {"params": counts.params, "macs": counts.macs}
        if not isinstance(self.criterion, Taylor) or not self._prunes_at(trainer.current_epoch):
            return
        total = trainer.num_training_batches
        if self.ranking.batches is not None and total != float("inf"):
            if batch_idx < int(total) - self.ranking.batches:
                return
        if self._tap is None:
            self._tap = self.criterion.tap(net, self._graph)
            self._handles = [
                net.register_forward_pre_hook(self._enter),
                net.register_forward_hook(self._exit),
            ]

    def _enter(self, module: nn.Module, args: Any) -> None:
        if self._tap is None or not module.training or not torch.is_grad_enabled():
            return
        if self._depth == 0:
            self._tap.observer.__enter__()
        self._depth += 1

    def _exit(self, module: nn.Module, args: Any, output: Any) -> None:
        if self._depth == 0:
            return
        self._depth -= 1
        if self._depth == 0 and self._tap is not None:
            self._tap.observer.__exit__(None, None, None)

    def _close(self) -> None:
        """Remove every hook (also after an exception inside a forward)."""
        if self._depth and self._tap is not None:
            self._tap.observer.__exit__(None, None, None)
        self._depth = 0
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        if self._depth and self._tap is not None:  # a forward that raised left the observer on
            self._tap.observer.__exit__(None, None, None)
            self._depth = 0

    def on_exception(
        self, trainer: Trainer, pl_module: LightningModule, exception: BaseException
    ) -> None:
        self._close()
        self._tap = None

    # ----- pruning ------------------------------------------------------------------------------
    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self._prunes_at(trainer.current_epoch) or self._graph is None:
            return
        net = _network(pl_module, self.module)
        criterion: Any = self.criterion
        if isinstance(self.criterion, Taylor):
            self._close()
            tap, self._tap = self._tap, None
            if tap is None:
                return  # no training batch was observed in this epoch
            scores = group_scores(self._graph, tap.result())  # all-reduced under DDP

            def criterion(graph: DependencyGraph, **ctx: Any) -> dict[str, torch.Tensor]:
                return scores

        before = {k: trainer.callback_metrics.get(k) for k in [self.monitor] if k}
        was_training = training_flags(net)
        plan = prune(
            net,
            self._example,
            selection=self.selection,
            ranking=self.ranking.replace(criterion=criterion, options={}),  # built above
            graph=self._graph,
        )
        restore_training(was_training)
        if is_distributed():
            check_same_plan(plan)
        self.last_plan = plan
        self.plan = plan if self.plan is None else self.plan.then(plan)
        setattr(net, _PLAN_ATTR, self.plan)
        _rebuild_optimizers(trainer, pl_module)
        counts = count(net, self._example)
        row: dict[str, Any] = {
            "epoch": trainer.current_epoch,
            "step": len(self.history) + 1,
            "removed": plan.num_removed,
            "params": counts.params,
            "macs": counts.macs,
        }
        for key, value in before.items():
            if value is not None:
                row[key] = float(value)
        self.history.append(row)
        if plan.num_removed == 0 or self._targets_met(counts.params, counts.macs):
            self._done = True
        metrics = {f"prune/{k}": float(v) for k, v in row.items() if k != "epoch"}
        for log in trainer.loggers:
            log.log_metrics(metrics, step=trainer.global_step)
        if trainer.is_global_zero:
            logger.info(
                "epoch %d: pruned %d channels; %d parameters, %d MACs",
                row["epoch"],
                row["removed"],
                row["params"],
                row["macs"],
            )


def _rebuild_optimizers(trainer: Trainer, pl_module: LightningModule) -> None:
    """New optimizers and schedulers over the pruned parameters, keeping their progress."""
    strategy = trainer.strategy
    groups = [[_hyper(g) for g in opt.param_groups] for opt in strategy.optimizers]
    schedulers = [cfg.scheduler.state_dict() for cfg in strategy.lr_scheduler_configs]
    if isinstance(strategy.model, nn.parallel.DistributedDataParallel):
        # surgery replaced the parameters: the old wrapper's buckets point at dead tensors
        strategy.model = pl_module
        strategy.configure_ddp()  # type: ignore[attr-defined]
    strategy.setup_optimizers(trainer)
    for optimizer, old in zip(strategy.optimizers, groups, strict=False):
        if len(optimizer.param_groups) == len(old):
            for group, hyper in zip(optimizer.param_groups, old, strict=True):
                group.update(hyper)
    for cfg, state in zip(strategy.lr_scheduler_configs, schedulers, strict=False):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cfg.scheduler.load_state_dict(state)
    device = strategy.root_device
    for optimizer in strategy.optimizers:
        for state in optimizer.state.values():
            for key, value in state.items():
                if isinstance(value, torch.Tensor):
                    state[key] = value.to(device)


def _hyper(group: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in group.items() if k != "params"}
