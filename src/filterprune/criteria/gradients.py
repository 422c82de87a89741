"""Weight-gradient criteria of Molchanov et al., CVPR 2019 ("Importance Estimation for Neural
Network Pruning", arXiv 1906.10771).

- ``weight_taylor``: importance of a filter = (sum over its weights of g * w)^2, the squared
  first-order change of the loss, per minibatch, averaged over minibatches.
- ``bn_gate_taylor``: the same for a gate after each BatchNorm: (gamma * dL/dgamma +
  beta * dL/dbeta)^2 per channel, the variant the authors found best.

Gradients come from ``torch.autograd.grad``: parameters' ``.grad`` stays untouched.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .._modes import restore_training, training_flags
from ..errors import ConfigError
from ..graph.groups import DependencyGraph
from ..graph.specs import spec_for
from .observe import _to_device
from .registry import Scores, register_criterion
from .taylor import ChannelStats, _require


def _loss(model: nn.Module, batch: Any, ctx: dict) -> torch.Tensor:
    if ctx.get("step_fn") is not None:
        return ctx["step_fn"](model, batch)
    inputs, targets = batch
    loss_fn = _require(ctx, "loss_fn")
    return loss_fn(model(inputs), targets)


class _GradientCriterion:
    needs_data = True

    def tensors(self, graph: DependencyGraph) -> dict[str, list[tuple[nn.Parameter, int]]]:
        """Module name -> parameters (with channel axis) whose g*w products form the score."""
        raise NotImplementedError

    def modules(self, graph: DependencyGraph) -> set[str]:
        raise NotImplementedError

    def __call__(self, graph: DependencyGraph, **ctx: Any) -> Scores:
        model = _require(ctx, "model")
        batches = _require(ctx, "batches")
        wanted = self.tensors(graph)
        flat = [(name, p, axis) for name, ps in wanted.items() for p, axis in ps]
        params = [p for _, p, _ in flat]
        stats = ChannelStats()
        was_training = training_flags(model)
        model.train(bool(ctx.get("train_mode", False)))
        seen = 0
        try:
            for batch in batches:
                if ctx.get("max_batches") is not None and seen >= ctx["max_batches"]:
                    break
                loss = _loss(model, _to_device(batch, ctx.get("device")), ctx)
                grads = torch.autograd.grad(loss, params, allow_unused=True)
                per_module: dict[str, torch.Tensor] = {}
                for (name, p, axis), g in zip(flat, grads, strict=True):
                    if g is None:
                        continue
                    prod = (p.detach() * g).movedim(axis, 0).reshape(p.shape[axis], -1).sum(1)
                    per_module[name] = per_module.get(name, 0) + prod
                for name, v in per_module.items():
                    stats.add(name, v.pow(2).unsqueeze(0))
                seen += 1
        finally:
            restore_training(was_training)
        if seen == 0:
            raise ConfigError(
                "ranking needs at least one batch, but the batches iterable was empty"
            )
        return self.combine(graph, stats.result())

    def combine(self, graph: DependencyGraph, per_module: dict[str, torch.Tensor]) -> Scores:
        scores = {}
        for g in graph.prunable:
            total = torch.zeros(g.size)
            for m in g.members:
                if m.module not in per_module or m.role not in self.roles:
                    continue
                total += m.channel_sums(per_module[m.module]).to(total)
            scores[g.name] = total
        return scores


@register_criterion("weight_taylor")
class WeightTaylor(_GradientCriterion):
    """(sum over the filter of g * w)^2 for each producing layer's filters."""

    name = "weight_taylor"
    roles = ("out",)

    def tensors(self, graph: DependencyGraph):
        out = {}
        for name in dict.fromkeys(p for g in graph.prunable for p in g.producers):
            module = graph.modules[name]
            ps = []
            for q in spec_for(module).out_params(module):
                t = getattr(module, q.name)
                if isinstance(t, nn.Parameter) and t.requires_grad:
                    ps.append((t, q.axis))
            if ps:
                out[name] = ps
        return out


@register_criterion("bn_gate_taylor")
class BNGateTaylor(_GradientCriterion):
    """(gamma * dL/dgamma + beta * dL/dbeta)^2 of the BatchNorms in each group."""

    name = "bn_gate_taylor"
    roles = ("channel",)

    def tensors(self, graph: DependencyGraph):
        out = {}
        for g in graph.prunable:
            for m in g.members:
                module = graph.module_of(m.module)
                if m.role == "channel" and isinstance(module, nn.modules.batchnorm._NormBase):
                    ps = [
                        (t, 0)
                        for t in (module.weight, module.bias)
                        if isinstance(t, nn.Parameter) and t.requires_grad
                    ]
                    if ps:
                        out[m.module] = ps
        return out
