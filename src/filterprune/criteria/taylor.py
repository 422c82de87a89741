"""The Taylor criterion of Molchanov et al., ICLR 2017 (arXiv 1611.06440), done exactly.

For feature map ``k`` of a layer, observed after its nonlinearity, and example ``m``::

    theta_m(k) = | mean over spatial positions of z * dL/dz |

averaged over the examples of each batch (absolute value per example, *before* the batch mean),
then accumulated over the ranking batches (a running mean over all examples by default, or an
exponential moving average). A group whose channels are produced by several layers (a residual
stage, a depthwise pair) sums its layers' scores. Statistics are computed in backward hooks on the
fly; only the per-channel sums are kept.

The earlier implementations' variants are available explicitly: ``signed=True`` averages the signed
product over examples and takes the absolute value at the end (the VGG16 seed's order).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import ConfigError, SetupError
from ..graph.groups import DependencyGraph
from ..parallel.reduce import all_reduce_sums
from .observe import FeatureObserver, channel_dot, run_passes
from .registry import Scores, register_criterion


class ChannelStats:
    """Per-module running sums of per-example statistics, all-reduced under torch.distributed."""

    def __init__(self, *, accumulate: str = "mean", momentum: float = 0.9) -> None:
        if accumulate not in ("mean", "ema"):
            raise ConfigError(f"accumulate must be 'mean' or 'ema', got {accumulate!r}")
        if not 0.0 <= momentum < 1.0:
            raise ConfigError(f"momentum must be in [0, 1), got {momentum}")
        self.accumulate = accumulate
        self.momentum = momentum
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, float] = {}

    def add(self, name: str, per_example: torch.Tensor) -> None:
        """Add an ``(N, C)`` block of per-example values for ``name``."""
        per_example = per_example.detach().double()
        if self.accumulate == "ema":
            batch = per_example.mean(0)
            prev = self.sums.get(name)
            self.sums[name] = (
                batch if prev is None else self.momentum * prev + (1 - self.momentum) * batch
            )
            self.counts[name] = 1.0
            return
        total = per_example.sum(0)
        self.sums[name] = self.sums[name] + total if name in self.sums else total
        self.counts[name] = self.counts.get(name, 0.0) + per_example.shape[0]

    def result(self) -> dict[str, torch.Tensor]:
        sums, counts = self.sums, self.counts
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            sums, counts = all_reduce_sums(sums, counts)
        return {n: (sums[n] / counts[n]).float().cpu() for n in sums}


def group_scores(graph: DependencyGraph, per_module: dict[str, torch.Tensor]) -> Scores:
    """Combine per-module channel statistics into one score per group channel (sum).

    A group of attention heads (one that lowers a head count) also sums the statistics of its
    output projection's input columns (``"<proj>#in"``, each head's attention output), so a
    head's score is over its q, k, v channels and its output columns, as with ``l1``.
    """
    scores = {}
    for g in graph.prunable:
        total = torch.zeros(g.size)
        found = False
        for m in g.members:
            stat = per_module.get(m.module) if m.role == "out" else None
            if m.role == "in" and g.heads:  # a head's output columns: its attention output
                stat = per_module.get(f"{m.module}#in")
            if stat is None:
                continue
            found = True
            total += m.channel_sums(stat.detach().cpu()).to(total.dtype)
        if not found:
            raise SetupError(
                f"no feature map of group '{g.name}' was observed during ranking; does the loss "
                "depend on it?"
            )
        scores[g.name] = total
    return scores


@dataclass
class TaylorTap:
    """What :meth:`Taylor.tap` returns: the observer to enter and the statistics it fills."""

    observer: FeatureObserver
    stats: ChannelStats
    waiting: dict[int, torch.Tensor]
    signed: bool

    def result(self) -> dict[str, torch.Tensor]:
        """Per producing module, the score of each output channel (all-reduced under DDP)."""
        self.waiting.clear()  # maps that got no gradient (their output did not reach the loss)
        result = self.stats.result()
        return {k: v.abs() for k, v in result.items()} if self.signed else result


@register_criterion("taylor")
class Taylor:
    """Activation Taylor criterion (Molchanov et al. 2017).

    Args:
        where: ``"activation"`` (after the nonlinearity following the layer, the paper's choice)
            or ``"module"`` (the output of the layer or of the per-channel layers after it).
        accumulate: ``"mean"`` over all ranking examples, or ``"ema"`` over batches.
        momentum: EMA momentum.
        signed: Use the signed batch mean and take ``abs`` at the end (not the paper's order).
        train_mode: Run ranking passes in train mode (BatchNorm batch statistics).
    """

    name = "taylor"
    needs_data = True

    def __init__(
        self,
        *,
        where: str = "activation",
        accumulate: str = "mean",
        momentum: float = 0.9,
        signed: bool = False,
        train_mode: bool = False,
    ) -> None:
        if where not in ("activation", "module"):
            raise ConfigError(f"where must be 'activation' or 'module', got {where!r}")
        self.where = where
        self.signed = signed
        self.train_mode = train_mode
        self.accumulate, self.momentum = accumulate, momentum
        ChannelStats(accumulate=accumulate, momentum=momentum)  # validate early

    def tap(self, model: torch.nn.Module, graph: DependencyGraph) -> TaylorTap:
        """Statistics of this criterion, gathered from passes that someone else runs.

        Enter ``tap.observer`` around forward passes of ``model`` whose backward follows (a
        training step, say); the feature maps' gradient hooks fill ``tap.stats``. Used by
        :meth:`per_module` (ranking passes) and by the Lightning callback (real training steps).
        """
        stats = ChannelStats(accumulate=self.accumulate, momentum=self.momentum)
        signed = self.signed

        # Feature maps wait here for their gradient. The hook must not capture ``z`` itself:
        # z -> its hooks -> the closure -> z would be a reference cycle, and every batch's
        # activations would then stay alive until the cyclic garbage collector ran.
        waiting: dict[int, torch.Tensor] = {}
        counter = itertools.count()

        def on_feature(name: str, z: torch.Tensor, cdim: int) -> None:
            if not z.requires_grad:
                return
            key = next(counter)
            waiting[key] = z.detach()

            def hook(grad: torch.Tensor) -> None:
                z_seen = waiting.pop(key, None)
                if z_seen is not None:
                    prod = channel_dot(z_seen, grad, cdim)  # (N, C)
                    stats.add(name, prod if signed else prod.abs())

            z.register_hook(hook)

        heads = tuple(
            dict.fromkeys(
                m.module for g in graph.prunable if g.heads for m in g.members if m.role == "in"
            )
        )
        observer = FeatureObserver(model, graph.anchors(self.where), on_feature, inputs=heads)
        return TaylorTap(observer, stats, waiting, signed)

    def per_module(self, graph: DependencyGraph, **ctx: Any) -> dict[str, torch.Tensor]:
        """Per producing module, the Taylor score of each of its output channels."""
        model = _require(ctx, "model")
        tap = self.tap(model, graph)
        run_passes(
            model,
            _require(ctx, "batches"),
            loss_fn=ctx.get("loss_fn"),
            step_fn=ctx.get("step_fn"),
            observer=tap.observer,
            backward=True,
            weight_grads=False,
            train_mode=self.train_mode,
            max_batches=ctx.get("max_batches"),
            device=ctx.get("device"),
            progress=ctx.get("progress", False),
        )
        return tap.result()

    def __call__(self, graph: DependencyGraph, **ctx: Any) -> Scores:
        return group_scores(graph, self.per_module(graph, **ctx))


def _require(ctx: dict, key: str) -> Any:
    if ctx.get(key) is None:
        raise ConfigError(
            f"this criterion needs data: pass {key}= (batches is an iterable of (inputs, targets); "
            "loss_fn(outputs, targets) returns a scalar)"
        )
    return ctx[key]
