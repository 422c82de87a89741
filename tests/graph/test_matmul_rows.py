"""A product that sums over channels keeps those channels, and its rows still follow ``a``.

EfficientViM's HSM-SSD mixer ends in ``y = h @ c``: ``c``'s rows are channels of a projection,
summed over, so they are kept; ``h``'s rows are the output projection's channels and become
``y``'s, which joins the residual stream (``x - x_prev``). The result used to be labelled as a
tensor of fixed size, which kept the stream and left the projection free: the probe's pruned
copy then raised at the subtraction, and efficientvim_m1 kept every group.
"""

from __future__ import annotations

from exact import prune_exactly
from torch import nn


class StateMixer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.proj = nn.Conv1d(8, 6, 1)  # the state channels, summed over by ``h @ c``
        self.out = nn.Conv1d(8, 8, 1)
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        x = self.stem(x)
        b, _, h, w = x.shape
        tokens = x.flatten(2)
        c = self.proj(tokens)  # (B, 6, N)
        state = self.out(tokens[:, :, :6])  # (B, 8, 6): six positions, out's channels
        y = (state @ c).reshape(b, -1, h, w)  # rows: out's channels
        return self.head(x + y)


def test_rows_of_a_product_over_channels_follow_the_stream() -> None:
    _, pruned, plan, graph = prune_exactly("state_mixer", StateMixer)
    assert pruned.stem.out_channels == pruned.out.out_channels < 8
    assert pruned.proj.out_channels == 6  # summed over: kept
    assert any("sums products over these channels" in r for g in graph.frozen for r in g.reasons)
