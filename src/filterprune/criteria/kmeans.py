"""KMeans filter clustering (Li, Xu & Zhu, IEICE 2018; the Ridurre framework).

Per group, the first producing layer's filters are flattened to ``(C_out, C_in*kh*kw)`` and
clustered with k-means++ (scikit-learn) into as many clusters ``k`` as the selection keeps
(``n - ceil(n * fraction)``: a group loses at least its share, as every criterion's selection
does), or ``k = ceil(n * keep_fraction)`` when that is given. One filter per cluster is kept; the others get the lowest scores, so removing ``n - k`` channels removes exactly
them. ``variant="ridurre"`` keeps the filter nearest each centre (Ridurre's code);
``variant="paper"`` keeps the one farthest from it (the cited paper removes near-centroid,
redundant filters). Among removed filters, those closest to their centre go first, so exact
duplicates are removed before anything else. Ties are broken by channel index. The clustering's
initialisation is seeded by ``seed``, or with ``seed=None`` (the default) by a draw from torch's
global generator, which the pruning loop seeds from the run's seed and the iteration: runs with
different ``--seed`` cluster from different starts, and each run is reproducible.

Like Ridurre, only convolutions are clustered by default: groups whose first producer is a
``Linear`` layer get no scores and keep their width; ``linear=True`` (``--criterion-arg
linear=true``) clusters them too. The scores are an order (which filter goes first), not a measured
importance (``synthetic_scores``), so run reports draw no score distribution for it.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..config.selection import Selection
from ..errors import ConfigError, MissingDependencyError
from ..graph.groups import DependencyGraph
from ..graph.specs import spec_for
from .registry import Scores, register_criterion


@register_criterion("kmeans")
class KMeansCriterion:
    """Scores from k-means clustering of filters (kept: 1 + rank, removed: in [0, 1))."""

    name = "kmeans"
    needs_data = False
    synthetic_scores = True  # ranks from the clustering, not importance: reports draw no scores

    def __init__(
        self,
        *,
        keep_fraction: float | None = None,
        variant: str = "ridurre",
        seed: int | None = None,
        linear: bool = False,
    ) -> None:
        if keep_fraction is not None and not 0.0 < keep_fraction <= 1.0:
            raise ConfigError(f"keep_fraction must be in (0, 1], got {keep_fraction}")
        if variant not in ("ridurre", "paper"):
            raise ConfigError(f"variant must be 'ridurre' or 'paper', got {variant!r}")
        if not isinstance(linear, bool):
            raise ConfigError(f"linear must be true or false, got {linear!r}")
        self.keep_fraction, self.variant, self.seed = keep_fraction, variant, seed
        self.linear = linear

    def __call__(self, graph: DependencyGraph, **ctx: Any) -> Scores:
        try:
            from sklearn.cluster import KMeans
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise MissingDependencyError(
                "the kmeans criterion needs scikit-learn: pip install filterprune[kmeans]"
            ) from exc
        selection = ctx.get("selection")  # what the caller will remove (filterprune.Selection)
        seed = self.seed
        if seed is None:  # from the global generator: the loop seeds it per (run seed, iteration)
            seed = int(torch.randint(0, 2**31 - 1, ()).item())
        scores = {}
        for g in graph.prunable:
            module = graph.modules[g.producers[0]]  # g.name may carry a '#2'
            if isinstance(module, nn.Linear) and not self.linear:
                continue  # Ridurre prunes convolutions only; linear=True opts in
            weight = next(q for q in spec_for(module).out_params(module) if q.name == "weight")
            w = getattr(module, weight.name).detach().movedim(weight.axis, 0).flatten(1).double()
            first = g.members[0]
            x = torch.stack([w[pos].reshape(-1) for pos in first.positions]).numpy()
            n = len(x)
            if self.keep_fraction is not None:
                k = max(1, math.ceil(n * self.keep_fraction))
            else:  # as many clusters as the selection keeps (it removes at least its share)
                chosen = selection if selection is not None else Selection(scope="per_group")
                k = max(1, n - chosen.removed_for(n))
            km = KMeans(n_clusters=min(k, n), init="k-means++", n_init=4, random_state=seed)
            labels = km.fit_predict(x)
            dist = ((x - km.cluster_centers_[labels]) ** 2).sum(1) ** 0.5
            kept = set()
            for c in range(km.n_clusters):
                members = [i for i in range(n) if labels[i] == c]
                if not members:
                    continue
                sign = 1.0 if self.variant == "ridurre" else -1.0
                kept.add(min(members, key=lambda i, sign=sign, dist=dist: (sign * dist[i], i)))
            removed = sorted((i for i in range(n) if i not in kept), key=lambda i: (dist[i], i))
            s = torch.empty(n)
            for rank, i in enumerate(removed):
                s[i] = rank / max(1, len(removed))
            for rank, i in enumerate(sorted(kept)):
                s[i] = 1.0 + rank / n
            scores[g.name] = s
        return scores
