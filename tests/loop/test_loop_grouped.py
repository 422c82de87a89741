"""The loop's ``grouped`` setting: grouped convs lose channels inside every group or whole groups.

``PruneConfig(grouped=...)`` (CLI ``--grouped``) reaches every analysis of the run, is saved with
the run's config, and the pruned model of either mode loads back from its run folder.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from filterprune.loop import ConfigError, PruneConfig, load, run_pruning


class GroupedNet(nn.Module):
    """conv(3->16) BN ReLU, grouped conv(16->16, 4 groups) BN ReLU, pool, Linear(16->3)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.grouped = nn.Sequential(
            nn.Conv2d(16, 16, 3, padding=1, groups=4), nn.BatchNorm2d(16), nn.ReLU()
        )
        self.fc = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.grouped(self.stem(x)).mean((2, 3)))


def _run(example, hooks, run_dir, grouped: str):
    torch.manual_seed(0)
    config = PruneConfig(
        amount=0.25,
        scope="per_group",
        finetune=2,
        max_iterations=1,
        ranking_batches=2,
        grouped=grouped,
    )
    return run_pruning(
        GroupedNet(), example, config=config, run_dir=run_dir, progress=False, **hooks.kwargs()
    )


@pytest.mark.parametrize(
    ("grouped", "shape"),
    [("within", (12, 4)), ("whole", (12, 3))],  # 25 % of 16: one of 4 per group, or one group
)
def test_the_run_prunes_grouped_convs_in_the_mode_asked(example, hooks, tmp_path, grouped, shape):
    result = _run(example, hooks, tmp_path / grouped, grouped)
    conv = result.model.grouped[0]
    assert (conv.out_channels, conv.groups) == shape
    saved = json.loads((tmp_path / grouped / "config.json").read_text())
    assert json.dumps(saved).count(f'"grouped": "{grouped}"') == 1

    again = load(tmp_path / grouped, GroupedNet)  # the original rebuilt, then the saved plan
    assert (again.grouped[0].out_channels, again.grouped[0].groups) == shape
    x = torch.randn(4, 3, 8, 8)
    result.model.eval(), again.eval()
    assert torch.allclose(again(x), result.model(x), atol=1e-6)


def test_an_unknown_mode_is_refused_by_its_flat_name() -> None:
    with pytest.raises(ConfigError, match=r"PruneConfig\.grouped.*'within', 'whole'"):
        PruneConfig(grouped="channels")


def test_the_setting_and_the_tracer_know_the_same_modes() -> None:
    from filterprune.config.selection import GROUPED as SETTING
    from filterprune.graph.tracer import GROUPED as TRACER

    assert SETTING == TRACER
