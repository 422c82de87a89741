"""Norms over a channel mean (GRN, RMS over channels) are pruned and rescaled, exactly.

Against the original whose removed filters give zeros (``mask_outputs``), the channel mean of the
pruned layer is ``C / C'`` times the original's; ``eps`` and the gain scaled by it (its square
root for RMS) give every kept channel its original value. timm's layers are found by their
qualified names (stand-ins here, timm is no dependency); a GRN with a literal ``eps`` in its code
cannot follow and keeps its channels (``test_patterns``).
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import filterprune as fp
from filterprune.testing import max_difference, randomize_norms


class GlobalResponseNorm(nn.Module):
    """timm's ``GlobalResponseNorm`` (``timm/layers/grn.py``), channels last or first."""

    def __init__(self, dim: int, eps: float = 1e-6, channels_last: bool = True) -> None:
        super().__init__()
        self.eps = eps
        self.spatial_dim, self.channel_dim = ((1, 2), -1) if channels_last else ((2, 3), 1)
        self.wb_shape = (1, 1, 1, -1) if channels_last else (1, -1, 1, 1)
        self.weight = nn.Parameter(torch.rand(dim) + 0.5)
        self.bias = nn.Parameter(torch.rand(dim) - 0.5)

    def forward(self, x):
        x_g = x.norm(p=2, dim=self.spatial_dim, keepdim=True)
        x_n = x_g / (x_g.mean(dim=self.channel_dim, keepdim=True) + self.eps)
        return x + torch.addcmul(self.bias.view(self.wb_shape), self.weight.view(self.wb_shape),
                                 x * x_n)  # fmt: skip


class RmsNorm2d(nn.Module):
    """timm's ``RmsNorm2d`` (``timm/layers/norm.py``): RMS over the channels of NCHW."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.normalized_shape, self.eps = (channels,), eps
        self.weight = nn.Parameter(torch.rand(channels) + 0.5)

    def forward(self, x):
        x = x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + self.eps)
        return x * self.weight.reshape(1, -1, 1, 1)


GlobalResponseNorm.__module__ = "timm.layers.grn"
RmsNorm2d.__module__ = "timm.layers.norm"


class ConvNeXtV2Block(nn.Module):
    """dwconv -> channels-last Linear -> GELU -> GRN -> Linear, with an RMS-normed stem."""

    def __init__(self, grn_last: bool = True) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 12, 2, 2), RmsNorm2d(12))
        self.dw = nn.Conv2d(12, 12, 3, padding=1, groups=12)
        self.fc1, self.fc2 = nn.Linear(12, 24), nn.Linear(24, 12)
        self.grn = GlobalResponseNorm(24, channels_last=grn_last)
        self.head = nn.Conv2d(12, 5, 1)

    def forward(self, x):
        x = self.stem(x)
        y = torch.nn.functional.gelu(self.fc1(self.dw(x).permute(0, 2, 3, 1)))
        if self.grn.channel_dim == 1:
            y = self.grn(y.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        else:
            y = self.grn(y)
        return self.head(x + self.fc2(y).permute(0, 3, 1, 2))


@pytest.mark.parametrize("grn_last", [True, False], ids=["channels_last", "channels_first"])
def test_grn_and_rms_norm_lose_channels_and_stay_exact(grn_last: bool) -> None:
    torch.manual_seed(0)
    model = randomize_norms(ConvNeXtV2Block(grn_last)).eval()
    x = torch.randn(2, 3, 16, 16)
    original = copy.deepcopy(model)
    graph = fp.analyze(model, x)
    assert not graph.frozen or all("model output" in r for g in graph.frozen for r in g.reasons)
    plan = fp.prune(model, x, amount=0.3, graph=graph, criterion="l1", scope="per_group",
                    layer_types=())  # fmt: skip
    assert model.grn.weight.numel() == model.fc1.out_features < 24
    assert model.stem[1].weight.numel() == model.stem[1].normalized_shape[0] < 12
    assert model.grn.eps > original.grn.eps  # scaled with the mean
    with torch.no_grad():
        scale = float(original(x).abs().max())
    diff = max_difference(original, model, plan, x, restrict_norms=True, mask_outputs=True)
    assert diff / scale < 1e-5


def test_a_plan_applied_to_a_fresh_model_rescales_it_too() -> None:
    torch.manual_seed(0)
    model = randomize_norms(ConvNeXtV2Block()).eval()
    x = torch.randn(2, 3, 16, 16)
    fresh = copy.deepcopy(model)
    plan = fp.prune(model, x, amount=0.3, criterion="l1", scope="per_group", layer_types=())
    fp.apply_plan(fresh, fp.Plan.from_json(plan.to_json()))
    assert fresh.grn.eps == model.grn.eps and fresh.stem[1].eps == model.stem[1].eps
    with torch.no_grad():
        assert torch.allclose(fresh(x), model(x))
