"""Activation statistics without gradients: mean activation and APoZ.

Mean activation (Molchanov et al. 2017, baseline): the mean of each feature map over positions and
examples. APoZ (Hu et al. 2016, arXiv 1607.03250): the average percentage of zeros of each
feature map after its ReLU; channels that are mostly zero are removed first (score = 1 - APoZ).
"""

from __future__ import annotations

from typing import Any

import torch

from ..graph.groups import DependencyGraph
from .observe import FeatureObserver, per_channel, run_passes
from .registry import Scores, register_criterion
from .taylor import ChannelStats, _require, group_scores


class _ActivationStat:
    needs_data = True
    where = "activation"

    def stat(self, z: torch.Tensor, cdim: int) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, graph: DependencyGraph, **ctx: Any) -> Scores:
        stats = ChannelStats()
        model = _require(ctx, "model")

        def on_feature(name: str, z: torch.Tensor, cdim: int) -> None:
            stats.add(name, self.stat(z.detach(), cdim))

        observer = FeatureObserver(model, graph.anchors(self.where), on_feature)
        run_passes(
            model,
            _require(ctx, "batches"),
            loss_fn=None,
            step_fn=ctx.get("step_fn"),
            observer=observer,
            backward=False,
            max_batches=ctx.get("max_batches"),
            device=ctx.get("device"),
            progress=ctx.get("progress", False),
        )
        return group_scores(graph, stats.result())


@register_criterion("mean_activation")
class MeanActivation(_ActivationStat):
    name = "mean_activation"

    def stat(self, z: torch.Tensor, cdim: int) -> torch.Tensor:
        return per_channel(z, cdim)


@register_criterion("apoz")
class APoZ(_ActivationStat):
    name = "apoz"

    def stat(self, z: torch.Tensor, cdim: int) -> torch.Tensor:
        return 1.0 - per_channel((z == 0).to(z.dtype), cdim)
