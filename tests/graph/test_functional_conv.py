"""A depthwise convolution called functionally with a module's own tensor as its weight.

timm's ``BlurPool2d`` (TResNet, the ``aa`` ResNets) blurs each channel with a fixed filter held
in a buffer: ``F.conv2d(x, self.filt, stride=2, groups=self.channels)``. Each output channel
reads one input channel, so the channels pass through; the buffer is sliced with them and
``self.channels`` follows. A functional conv that mixes channels keeps what it touches.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from exact import example, prune_exactly
from torch import nn

import filterprune as fp


class BlurPool(nn.Module):
    """A per-channel 3x3 filter in a non-persistent buffer, applied as a depthwise conv."""

    def __init__(self, channels: int, *, bias: bool = False) -> None:
        super().__init__()
        self.channels = channels
        filt = torch.rand(channels, 1, 3, 3, generator=torch.Generator().manual_seed(3))
        self.register_buffer("filt", filt, persistent=False)  # different for every channel
        self.shift = nn.Parameter(torch.randn(channels)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (1, 1, 1, 1), mode="reflect")
        return F.conv2d(x, self.filt, self.shift, stride=2, groups=self.channels)


class Net(nn.Module):
    def __init__(self, blur: nn.Module) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.blur = blur
        self.conv2 = nn.Sequential(nn.Conv2d(16, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.head = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv2(self.blur(self.conv1(x))).mean((2, 3)))


@pytest.mark.parametrize("bias", [False, True], ids=["buffer", "buffer_and_bias"])
def test_a_functional_depthwise_conv_passes_its_channels_through(bias: bool) -> None:
    _, pruned, plan, graph = prune_exactly("blur", lambda: Net(BlurPool(16, bias=bias)))
    assert not any("conv1.0" in g.producers for g in graph.groups if g.frozen)
    kept = 16 - 5  # 30 % of 16: at least the share
    assert pruned.conv1[0].out_channels == kept
    assert pruned.blur.channels == kept and pruned.blur.filt.shape == (kept, 1, 3, 3)
    if bias:
        assert pruned.blur.shift.shape == (kept,)
    # the kept channels keep their own filters
    original = BlurPool(16, bias=bias)
    removed = set(plan.removed_outputs["conv1.0"])
    left = [i for i in range(16) if i not in removed]
    assert torch.equal(pruned.blur.filt, original.filt[left])


class Mixing(nn.Module):
    """A functional conv whose every output reads every input channel (groups=1)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(channels, channels, 1, 1) / channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight)


class Expanded(nn.Module):
    """One filter expanded to the channels in ``forward`` (BlurPool2d with ``channels=None``)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("filt", torch.rand(1, 1, 3, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.filt.expand(x.shape[1], 1, 3, 3)
        return F.conv2d(x, weight, padding=1, groups=x.shape[1])


class Computed(nn.Module):
    """A per-channel weight computed in ``forward`` from a held tensor of another shape."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.base = nn.Parameter(torch.rand(channels, 9))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.base.softmax(-1).view(x.shape[1], 1, 3, 3)
        return F.conv2d(x, weight, padding=1, groups=x.shape[1])


def test_one_filter_expanded_to_every_channel_follows_them() -> None:
    _, pruned, _, graph = prune_exactly("expanded", lambda: Net(Expanded()))
    assert not any("conv1.0" in g.producers for g in graph.groups if g.frozen)
    assert pruned.conv1[0].out_channels == 16 - 5 and pruned.blur.filt.shape == (1, 1, 3, 3)


@pytest.mark.parametrize("blur", [Mixing(16), Computed(16)], ids=["mixing", "computed"])
def test_other_functional_convs_keep_their_channels_and_say_where(blur: nn.Module) -> None:
    graph = fp.analyze(Net(blur).eval(), example())
    group = next(g for g in graph.groups if "conv1.0" in g.producers)
    assert group.frozen
    assert any("op 'conv2d'" in reason for reason in group.reasons), group.reasons
