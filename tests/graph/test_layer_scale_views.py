"""A layer scale or affine parameter used through a view (timm's ConvNeXt ``gamma.reshape(1, -1,
1, 1)``, GRN's ``weight.view(1, 1, 1, -1)``) is pruned with its channels, channels first or last."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import filterprune as fp
from filterprune.testing import assert_equivalent, randomize_norms


class LayerNorm2d(nn.LayerNorm):
    """Channels-first LayerNorm through permutes, as timm writes it."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class Block(nn.Module):
    """ConvNeXt block: depthwise conv, norm, MLP (linear channels-last or 1x1 conv), scale."""

    def __init__(self, dim, conv_mlp):
        super().__init__()
        self.conv_mlp = conv_mlp
        self.conv_dw = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm = LayerNorm2d(dim) if conv_mlp else nn.LayerNorm(dim)
        make = (lambda i, o: nn.Conv2d(i, o, 1)) if conv_mlp else nn.Linear
        self.fc1, self.fc2 = make(dim, 2 * dim), make(2 * dim, dim)
        self.gamma = nn.Parameter(torch.rand(dim) + 0.5)
        self.shift = nn.Parameter(torch.randn(dim))

    def forward(self, x):
        shortcut = x
        x = self.conv_dw(x)
        if self.conv_mlp:
            x = self.fc2(F.gelu(self.fc1(self.norm(x))))
        else:
            x = x.permute(0, 2, 3, 1)
            x = self.fc2(F.gelu(self.fc1(self.norm(x))))
            x = x.permute(0, 3, 1, 2)
        x = torch.addcmul(self.shift.view(1, -1, 1, 1), x, self.gamma.reshape(1, -1, 1, 1))
        return x + shortcut


class Stream(nn.Module):
    def __init__(self, conv_mlp):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 2, stride=2)
        self.blocks = nn.Sequential(Block(8, conv_mlp), Block(8, conv_mlp))
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)).mean((2, 3)))


@pytest.mark.parametrize("conv_mlp", [False, True])
def test_residual_stream_with_viewed_scales_is_pruned_exactly(conv_mlp):
    torch.manual_seed(0)
    model = Stream(conv_mlp).eval()
    randomize_norms(model)
    x = torch.randn(2, 3, 16, 16)
    graph = fp.analyze(model, x)
    stream = graph.group("stem")
    assert not stream.frozen, stream.reasons
    members = {m.module for m in stream.members}
    assert {"blocks.0.gamma", "blocks.0.shift", "blocks.1.gamma"} <= members
    original = copy.deepcopy(model)
    plan = fp.prune(
        model, x, amount=0.25, criterion="l1", graph=graph, scope="per_group", layer_types=()
    )
    assert plan.removed_outputs.get("stem")
    assert model.blocks[0].gamma.shape[0] == model.stem.out_channels < 8
    assert_equivalent(original, model, plan, x, restrict_norms=True)


class HardCodedScale(Stream):
    def forward(self, x):
        y = self.stem(x)
        y = y * self.blocks[0].gamma.reshape(1, 8, 1, 1)  # the count written in code
        return self.head(y.mean((2, 3)))


def test_view_written_with_the_count_is_kept_by_the_probe():
    graph = fp.analyze(HardCodedScale(False), torch.randn(2, 3, 16, 16))
    assert graph.group("stem").frozen
