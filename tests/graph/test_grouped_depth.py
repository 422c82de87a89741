"""How deep a grouped conv (ResNeXt, RegNet) goes when every group loses its share.

Within-group removal takes channel ``j`` of every group together, so a group of the graph holds
one class per channel of a conv group (4 for ResNeXt-50's first stage, 16 in its third). Those are
coarse units, and every group loses at least its share in whole units (as plain channels and heads
do): 30 % of 16 is 5 (floor would give 4, 25 %), 30 % of 4 is 2, as the peer's floor(0.7 n) kept.
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
    [(64, 4, 44), (32, 8, 16), (16, 4, 8), (40, 4, 28)],
    ids=["16_per_group", "4_per_group", "4_per_group_4", "10_per_group"],
)
def test_channels_inside_groups_lose_at_least_their_share(
    width: int, groups: int, kept: int
) -> None:
    # 30 % of 16 -> 5 (44 of 64 kept), of 4 -> 2 (16 of 32), of 10 -> 3 (28 of 40)
    _, pruned, plan, _ = prune_exactly(
        "grouped", lambda: GroupedBottleneck(width=width, groups=groups)
    )
    conv = pruned.grouped[0]
    assert (conv.out_channels, conv.groups) == (kept, groups)
    assert len(plan.removed_outputs["reduce.0"]) == width - kept


def test_whole_groups_lose_at_least_their_share() -> None:
    # grouped="whole": 30 % of 4 groups is two groups (32 channels)
    _, pruned, _, _ = prune_exactly("grouped", GroupedBottleneck, grouped="whole")
    conv = pruned.grouped[0]
    assert (conv.out_channels, conv.groups) == (32, 2)


def test_plain_channels_lose_at_least_their_share() -> None:
    # a plain group (one channel per class) too: 30 % of 24 is 8 (7.2), of 16 is 5 (4.8; floor
    # gave 4, 25 %), as the peer's floor(0.7 n) kept
    _, pruned, _, _ = prune_exactly("grouped", GroupedBottleneck)
    assert pruned.stem.out_channels == 24 - 8
    _, pruned, _, _ = prune_exactly("plain", lambda: nn.Sequential(
        nn.Conv2d(3, 16, 3), nn.ReLU(), nn.Conv2d(16, 5, 1)
    ))  # fmt: skip
    assert pruned[0].out_channels == 16 - 5


def test_an_exact_share_is_not_rounded_up() -> None:
    # 50 % of 5 is 2.5: three go, never less than the share; 30 % of 10 is exactly three (no
    # float error makes it four)
    _, pruned, _, _ = prune_exactly("plain", lambda: nn.Sequential(
        nn.Conv2d(3, 5, 3), nn.ReLU(), nn.Conv2d(5, 4, 1)
    ), amount=0.5)  # fmt: skip
    assert pruned[0].out_channels == 5 - 3
    _, pruned, _, _ = prune_exactly("plain", lambda: nn.Sequential(
        nn.Conv2d(3, 10, 3), nn.ReLU(), nn.Conv2d(10, 4, 1)
    ), amount=0.3)  # fmt: skip
    assert pruned[0].out_channels == 10 - 3  # 0.3 * 10 = 3.0000000000000004
