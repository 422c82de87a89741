"""Widths the hardware likes: each pruned group's width chosen on its measured latency staircase.

A layer's time does not fall evenly with its width. On CPUs oneDNN computes output channels in
blocks (8 floats with AVX2, 16 with AVX-512), so at batch 16 a 3×3 convolution with 65 outputs
costs as much as one with 80, and one with 64 about a quarter less (docs/benchmarks.md,
"Widths the hardware likes"). One global ``round_to`` assumes one block size for every layer,
batch and machine; :class:`StaircaseWidths` measures instead.

When a pruning step has decided to keep ``k`` of a group's ``n`` channels, the chooser times the
group's layers (every conv and linear layer whose inputs or outputs the group holds) at each
width ``w`` within :data:`WINDOW` of ``k`` that is ``k`` or a multiple of :data:`STRIDE`, from the run's :class:`~.latency_table.LatencyTable`,
and rates each by the time it saves per channel removed, ``(T(n) - T(w)) / (n - w)``. Of the
widths rated within :data:`TOLERANCE` of the best, it keeps the one nearest ``k``. On a
staircase the best rate is at the low edge of a step (all of a block's time goes with its last
channel); where time falls evenly with width, every width rates alike and ``k`` stays. The
ranking still chooses *which* channels go; the chooser only moves how many, by at most
``WINDOW``.

A model deployed at several batch sizes has one staircase per batch size (on the AMD EPYC of the
benchmarks, none at batch 1 and blocks of 16 at batch 16). Given several examples, the chooser
rates each width by the sum over them of the *share* of the group's time it saves per channel
removed, so each batch size counts alike whatever its absolute time; where one batch size's time
falls evenly, the other's steps decide.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from torch import nn

from filterprune.measure._forward import ExampleInputs
from filterprune.measure.latency_table import LatencyTable, LayerShape, layer_shapes

logger = logging.getLogger("filterprune")

__all__ = ["TOLERANCE", "WINDOW", "StaircaseWidths"]

WINDOW = 0.125  # the width may move this fraction of the chosen one, down or up
#: Candidate widths are the ranking's and the multiples of this within reach: SIMD blocks of
#: channels are 4 (NEON, SSE), 8 (AVX2) or 16 (AVX-512) floats, so every step edge is on one.
STRIDE = 4
TOLERANCE = 0.03  # rates within 3 % of the best count as equal (a table entry's timing noise)


class StaircaseWidths:
    """Chooses group widths on measured latency staircases.

    Args:
        model: The model at its current widths (the one the groups belong to).
        example_inputs: Inputs at the batch size the latency is wanted for.
        table: The lookup table to read and fill (default: this machine's cached one, timing
            with the current thread count).
        more_examples: Inputs at further batch sizes the widths should suit too.
    """

    def __init__(
        self,
        model: nn.Module,
        example_inputs: ExampleInputs,
        table: LatencyTable | None = None,
        more_examples: Sequence[ExampleInputs] = (),
    ) -> None:
        self.table = table if table is not None else LatencyTable()
        self.shapes_at = [layer_shapes(model, x) for x in (example_inputs, *more_examples)]
        self.shapes = self.shapes_at[0]
        self.moves: list[tuple[str, int, int]] = []  # (group, ranked keep, chosen keep)

    def _shrinks(self, group: Any) -> dict[str, list[int]]:
        """Per timed layer of the group, the positions its in and out axes lose per channel."""
        per: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for m in group.members:
            if m.module not in self.shapes or m.role not in ("in", "out") or not m.positions:
                continue
            share = len(m.positions[0])
            per[m.module][0 if m.role == "in" else 1] += share
        return dict(per)

    def group_ms(self, group: Any, keep: int, at: int = 0) -> float:
        """The table's time of the group's layers with ``keep`` of its channels, at the
        ``at``-th example; ``nan`` where a width does not fit a layer's grouping."""
        drop = group.size - keep
        total = 0.0
        for name, (d_in, d_out) in self._shrinks(group).items():
            shape: LayerShape = self.shapes_at[at][name]
            if shape.groups == "depthwise":  # its inputs and outputs shrink together
                d_in = max(d_in, d_out)
                d_out = d_in * max(1, shape.cout // shape.cin)
            cin, cout = shape.cin - drop * d_in, shape.cout - drop * d_out
            total += self.table.layer_ms(shape, cin, cout)
        return total

    def __call__(self, group: Any, keep: int, lowest: int) -> int:
        """The width to keep for ``group``, whose ranking chose ``keep`` channels and which may
        keep no fewer than ``lowest``."""
        n = group.size
        if keep >= n or not self._shrinks(group):
            return keep
        nows = [self.group_ms(group, n, at) for at in range(len(self.shapes_at))]
        reach = max(1, math.ceil(WINDOW * keep))
        rates = {}
        low, high = max(lowest, keep - reach), min(n - 1, keep + reach)
        candidates = {w for w in range(low, high + 1) if w % STRIDE == 0} | {keep}
        for w in sorted(c for c in candidates if low <= c <= high):
            times = [self.group_ms(group, w, at) for at in range(len(nows))]
            if any(
                math.isnan(t) or math.isnan(now) or now <= 0
                for t, now in zip(times, nows, strict=True)
            ):
                continue
            # the share of the group's time saved per channel removed, summed over batch sizes
            rates[w] = sum((now - t) / now for t, now in zip(times, nows, strict=True)) / (n - w)
        best = max(rates.values(), default=0.0)
        if best <= 0:
            return keep
        good = [w for w, r in rates.items() if r >= best * (1 - TOLERANCE)]
        chosen = min(good, key=lambda w: (abs(w - keep), -w))
        if chosen != keep:
            self.moves.append((group.name, keep, chosen))
        logger.debug("%s: width %d -> %d on its latency staircase", group.name, keep, chosen)
        return chosen

    def save(self) -> None:
        """Write the table's new entries to its cache."""
        self.table.save()
