"""Each channel counted once: the layer table lists the producers of channel groups only."""

from __future__ import annotations

import torch
from torch import nn

import filterprune as fp
from filterprune.loop import PruneConfig, channel_groups, run_pruning


class Mixed(nn.Module):
    """A depthwise conv, a residual add, a concat and a split, on (N, 3, 8, 8).

    stem(3->8) -> BN -> dw(8, depthwise) ; a(8->6) + b(8->6) (tied by the add) ;
    cat([a + b, dw]) -> c(14->10) ; split c's output 4 | 6 -> d(4->5), e(6->5) ; d + e -> fc.
    """

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.a = nn.Conv2d(8, 6, 1)
        self.b = nn.Conv2d(8, 6, 1)
        self.c = nn.Conv2d(14, 10, 1)
        self.d = nn.Conv2d(4, 5, 1)
        self.e = nn.Conv2d(6, 5, 1)
        self.fc = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.stem(x)))
        y = torch.cat([self.a(x) + self.b(x), torch.relu(self.dw(x))], dim=1)
        left, right = self.c(y).split([4, 6], dim=1)
        z = self.d(left) + self.e(right)
        return self.fc(z.mean(dim=(2, 3)))


def test_groups_are_keyed_by_their_producers_only():
    torch.manual_seed(0)
    model = Mixed()
    groups = channel_groups(fp.analyze(model, torch.randn(1, 3, 8, 8)))
    # the depthwise conv passes stem's channels on; a and b share theirs; c's 10 channels are one
    # group whatever the split does; BN and the concat's consumer c (as a reader) add nothing
    assert groups == {"stem + dw": 8, "a + b": 6, "c": 10, "d + e": 5, "fc": 3}
    # counting every conv's outputs, as a per-module table would, counts 12 channels twice
    per_module = sum(m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d))
    assert per_module - (8 + 6 + 10 + 5) == 8 + 6 + 5 - 0  # dw's 8, b's 6, e's 5


def test_layer_table_and_iteration_table_agree():
    torch.manual_seed(0)
    config = PruneConfig(criterion="l1", amount=0.3, scope="per_group", max_iterations=2)
    result = run_pruning(Mixed(), torch.randn(1, 3, 8, 8), config=config, progress=False)
    removed = result.final_row["removed_total"]
    table = result.layer_table()
    assert removed > 0
    assert sum(table.column("removed")) == removed == sum(result.table().column("removed")[1:])
    assert table.column("layer") == ["stem + dw", "a + b", "c", "d + e", "fc"]
    assert table.rows[-1]["removed"] == 0  # the output layer keeps its 3 classes
    after = dict(zip(table.column("layer"), table.column("after"), strict=True))
    assert result.model.dw.out_channels == result.model.stem.out_channels == after["stem + dw"]
    assert result.model.a.out_channels == result.model.b.out_channels == after["a + b"]
    assert result.model.c.out_channels == after["c"]
    note = table.notes[0]
    assert note.startswith("Total: 32 → ") and f"{removed} removed" in note
