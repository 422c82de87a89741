"""How deep a grouped conv (ResNeXt, RegNet) goes when every group loses its share.

Within-group removal takes channel ``j`` of every group together, so a group of the graph holds
one class per channel of a conv group (4 for ResNeXt-50's first stage, 16 in its third). Those are
coarse units, rounded to the nearest (as plain channels are): 30 % of 16 is 5 (floor would give 4,
25 %), 30 % of 4 is 1.
"""

from __future__ import annotations

import pytest
from exact import prune_exactly
from torch import nn


class GroupedBottleneck(nn.Module):
    """1x1 -> grouped 3x3 -> 1x1 with BatchNorm, a residual sum, as in ResNeXt."""

    def __init__(self, *, width: int = 64, groups: int = 4) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 24, 3, padding=1)
        self.reduce = nn.Sequential(nn.Conv2d(24, width, 1, bias=False), nn.BatchNorm2d(width))
        self.grouped = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1, groups=groups, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
        )
        self.expand = nn.Sequential(nn.Conv2d(width, 24, 1, bias=False), nn.BatchNorm2d(24))
        self.head = nn.Conv2d(24, 5, 1)

    def forward(self, x):
        x = self.stem(x)
        return self.head(x + self.expand(self.grouped(self.reduce(x).relu())))


@pytest.mark.parametrize(
    ("width", "groups", "kept"),
    [(64, 4, 44), (32, 8, 24), (16, 4, 12), (40, 4, 28)],
    ids=["16_per_group", "4_per_group", "4_per_group_4", "10_per_group"],
)
def test_channels_inside_groups_round_to_nearest(width: int, groups: int, kept: int) -> None:
    # 30 % of 16 -> 5 (44 of 64 kept), of 4 -> 1 (24 of 32), of 10 -> 3 (28 of 40)
    _, pruned, plan, _ = prune_exactly(
        "grouped", lambda: GroupedBottleneck(width=width, groups=groups)
    )
    conv = pruned.grouped[0]
    assert (conv.out_channels, conv.groups) == (kept, groups)
    assert len(plan.removed_outputs["reduce.0"]) == width - kept


def test_whole_groups_round_to_nearest() -> None:
    # grouped="whole": 30 % of 4 groups is one group (16 channels)
    _, pruned, _, _ = prune_exactly("grouped", GroupedBottleneck, grouped="whole")
    conv = pruned.grouped[0]
    assert (conv.out_channels, conv.groups) == (48, 3)


def test_plain_channels_round_to_nearest() -> None:
    # a plain group (one channel per class) rounds to the nearest too: 30 % of 24 is 7 (7.2),
    # of 16 is 5 (4.8; floor gave 4, 25 %), as the peer's floor(0.7 n) kept
    _, pruned, _, _ = prune_exactly("grouped", GroupedBottleneck)
    assert pruned.stem.out_channels == 24 - 7
    _, pruned, _, _ = prune_exactly("plain", lambda: nn.Sequential(
        nn.Conv2d(3, 16, 3), nn.ReLU(), nn.Conv2d(16, 5, 1)
    ))  # fmt: skip
    assert pruned[0].out_channels == 16 - 5


def test_a_plain_tie_rounds_down() -> None:
    # 50 % of 5 is 2.5: two go, never more than the share
    _, pruned, _, _ = prune_exactly("plain", lambda: nn.Sequential(
        nn.Conv2d(3, 5, 3), nn.ReLU(), nn.Conv2d(5, 4, 1)
    ), amount=0.5)  # fmt: skip
    assert pruned[0].out_channels == 5 - 2
