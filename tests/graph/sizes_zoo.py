"""Small models of our own whose ``forward`` reads channel counts from module attributes.

timm's SKNet splits its input by ``self.in_channels // self.num_paths`` and reshapes the
attention by ``self.num_paths``; a split by sizes read from two attributes (unequal pieces); a
``narrow`` by attributes; and the same slice and split written with numbers, which must stay.
Res2Net (``split(self.width)``) and GhostNet (``out[:, :self.oup]``) are in ``patterns.py``.
"""

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_act(cin, cout, k=3, groups=1):
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, 1, k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
    )


class SelectiveKernelAttn(nn.Module):
    def __init__(self, channels, num_paths=2, attn_channels=8):
        super().__init__()
        self.num_paths = num_paths
        self.fc_reduce = nn.Conv2d(channels, attn_channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(attn_channels)
        self.fc_select = nn.Conv2d(attn_channels, channels * num_paths, 1, bias=False)

    def forward(self, x):
        x = x.sum(1).mean((2, 3), keepdim=True)
        x = self.fc_select(F.relu(self.bn(self.fc_reduce(x))))
        b, c, h, w = x.shape
        return torch.softmax(x.view(b, self.num_paths, c // self.num_paths, h, w), dim=1)


class SelectiveKernel(nn.Module):
    """timm's ``SelectiveKernel`` with ``split_input=True``: each path sees a slice of the input."""

    def __init__(self, in_channels=16, out_channels=12, num_paths=2):
        super().__init__()
        self.num_paths, self.in_channels, self.out_channels = num_paths, in_channels, out_channels
        width = in_channels // num_paths
        self.paths = nn.ModuleList(
            conv_bn_act(width, out_channels, 3 + 2 * i) for i in range(num_paths)
        )
        self.attn = SelectiveKernelAttn(out_channels, num_paths)

    def forward(self, x):
        x_split = torch.split(x, self.in_channels // self.num_paths, 1)
        x = torch.stack([op(x_split[i]) for i, op in enumerate(self.paths)], dim=1)
        return torch.sum(x * self.attn(x), dim=1)


class SKNetTimm(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = conv_bn_act(3, 16)
        self.sk = SelectiveKernel()
        self.conv3 = nn.Sequential(nn.Conv2d(12, 16, 1, bias=False), nn.BatchNorm2d(16))
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        x = self.stem(x)
        return self.fc(F.relu(self.conv3(self.sk(x)) + x).mean((2, 3)))


class UnequalSplit(nn.Module):
    """``split(x, [self.a, self.b])``: two pieces of different widths, each counted by its own
    attribute; and ``narrow(1, 0, self.a)`` beside it."""

    def __init__(self, a=6, b=10):
        super().__init__()
        self.a, self.b = a, b
        self.conv1 = conv_bn_act(16, a + b, 1)
        self.left = conv_bn_act(a, 8)
        self.right = conv_bn_act(b, 8)
        self.narrowed = conv_bn_act(a, 8)

    def forward(self, x):
        y = self.conv1(x)
        left, right = torch.split(y, [self.a, self.b], dim=1)
        return self.left(left) + self.right(right) + self.narrowed(y.narrow(1, 0, self.a))


class UnequalSplitNet(nn.Module):
    def __init__(self, block=UnequalSplit):
        super().__init__()
        self.stem = conv_bn_act(3, 16)
        self.block = block()
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        return self.fc(self.block(self.stem(x)).mean((2, 3)))


class LiteralSlice(UnequalSplit):
    """The same block with its sizes written as numbers: the sliced channels must stay."""

    def forward(self, x):
        y = self.conv1(x)
        left, right = torch.split(y, [6, 10], dim=1)
        return self.left(left) + self.right(right) + self.narrowed(y[:, :6])


class LiteralSliceNet(UnequalSplitNet):
    def __init__(self):
        super().__init__(LiteralSlice)


# ----- Swin-V2 / BEiT: the qkv bias concatenated in forward, F.linear with the layer's weight ---
class CatBiasAttention(nn.Module):
    """timm's BEiT/Swin-V2 attention: ``qkv`` without a bias, ``q_bias``/``v_bias`` parameters
    and a zero key bias (a buffer, or ``zeros_like`` in forward), ``F.linear`` with the weight."""

    def __init__(self, dim, num_heads=4, zeros="buffer"):
        super().__init__()
        self.num_heads, self.zeros = num_heads, zeros
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.q_bias = nn.Parameter(torch.randn(dim) * 0.5)
        self.register_buffer("k_bias", torch.zeros(dim), persistent=False)
        self.v_bias = nn.Parameter(torch.randn(dim) * 0.5)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        k_bias = self.k_bias if self.zeros == "buffer" else torch.zeros_like(self.v_bias)
        qkv_bias = torch.cat((self.q_bias, k_bias, self.v_bias))
        qkv = F.linear(x, weight=self.qkv.weight, bias=qkv_bias)
        q, k, v = qkv.reshape(B, N, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).flatten(2))


class OtherBiasAttention(CatBiasAttention):
    """A bias of fixed length made in forward: the qkv outputs must stay."""

    def forward(self, x):
        B, N, C = x.shape
        qkv = F.linear(x, self.qkv.weight, torch.ones(96))
        q, k, v = qkv.reshape(B, N, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).flatten(2))


class BeitAttention(CatBiasAttention):
    """BEiT's ending: ``reshape(B, N, C)`` with ``C`` the input's width, read from ``x.shape``:
    the heads' total width must stay equal to the embedding width."""

    def forward(self, x):
        B, N, C = x.shape
        qkv_bias = torch.cat((self.q_bias, self.k_bias, self.v_bias))
        qkv = F.linear(x, weight=self.qkv.weight, bias=qkv_bias)
        q, k, v = qkv.reshape(B, N, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(B, N, C))


# ----- DPN: one conv's output sliced in two by an attribute, each part in its own path --------
class DualPath(nn.Module):
    """timm's DPN block: ``x_s[:, :self.num_1x1_c]`` joins the residual path and
    ``x_s[:, self.num_1x1_c:]`` the dense (concatenated) path."""

    def __init__(self, num_1x1_c=12, inc=4):
        super().__init__()
        self.num_1x1_c = num_1x1_c
        self.proj = conv_bn_act(16, num_1x1_c + inc, 1)
        self.body = conv_bn_act(16, num_1x1_c + inc, 3)

    def forward(self, x):
        x_s, out = self.proj(x), self.body(x)
        resid = x_s[:, : self.num_1x1_c] + out[:, : self.num_1x1_c]
        dense = torch.cat([x_s[:, self.num_1x1_c :], out[:, self.num_1x1_c :]], dim=1)
        return resid, dense


class DualPathNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = conv_bn_act(3, 16)
        self.block = DualPath()
        self.fc = nn.Linear(12 + 8, 5)

    def forward(self, x):
        resid, dense = self.block(self.stem(x))
        return self.fc(torch.cat([resid, dense], 1).mean((2, 3)))


class InceptionDWConv(nn.Module):
    """timm's InceptionNeXt token mixer: ``split(x, self.split_indexes)`` with a tuple of sizes,
    three of them equal, then a depthwise conv per piece and a concat."""

    def __init__(self, channels=24, branch=6):
        super().__init__()
        self.split_indexes = (channels - 3 * branch, branch, branch, branch)
        self.hw = nn.Conv2d(branch, branch, 3, padding=1, groups=branch)
        self.w = nn.Conv2d(branch, branch, (1, 5), padding=(0, 2), groups=branch)
        self.h = nn.Conv2d(branch, branch, (5, 1), padding=(2, 0), groups=branch)

    def forward(self, x):
        x_id, x_hw, x_w, x_h = torch.split(x, self.split_indexes, dim=1)
        return torch.cat((x_id, self.hw(x_hw), self.w(x_w), self.h(x_h)), dim=1)


class InceptionNeXtNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = conv_bn_act(3, 24)
        self.mixer = InceptionDWConv()
        self.norm = nn.BatchNorm2d(24)
        self.mlp = nn.Sequential(nn.Conv2d(24, 32, 1), nn.GELU(), nn.Conv2d(32, 24, 1))
        self.head = nn.Conv2d(24, 5, 1)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.mlp(self.norm(self.mixer(x)))
        return self.head(x)


SIZES = {
    "inception_next": InceptionNeXtNet,
    "dual_path": lambda: DualPathNet(),
    "sknet_timm": SKNetTimm,
    "unequal_split": UnequalSplitNet,
    "literal_slice": LiteralSliceNet,
}
