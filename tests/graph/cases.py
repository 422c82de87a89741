"""Hand-written models that exercise one channel rule each."""

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn(cin, cout, k=3, groups=1):
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=k // 2, groups=groups), nn.BatchNorm2d(cout)
    )


class ChunkSplit(nn.Module):
    """ShuffleNet-style: chunk in two halves, process one, concatenate, shuffle."""

    def __init__(self):
        super().__init__()
        self.stem = conv_bn(3, 8)
        self.branch = conv_bn(4, 4)
        self.mid = conv_bn(8, 6)
        self.branch2 = conv_bn(3, 3)
        self.head = nn.Conv2d(6, 5, 1)

    def forward(self, x):
        x = F.relu(self.stem(x))
        a, b = x.chunk(2, dim=1)
        x = torch.cat([a, F.relu(self.branch(b))], 1)
        x = F.channel_shuffle(x, 2) if hasattr(F, "channel_shuffle") else x
        x = self.mid(x)
        c, d = x.split(x.size(1) // 2, dim=1)
        x = torch.cat([self.branch2(c), d], 1)
        return self.head(x)


class ConstantSlice(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(4, 4, 3, padding=1)
        self.c = nn.Conv2d(4, 6, 3, padding=1)
        self.head = nn.Conv2d(6, 2, 1)

    def forward(self, x):
        x = self.a(x)
        x = self.b(x[:, :4])  # 4 is written in the code
        return self.head(self.c(x))


class ConstantSetitem(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 4, 3, padding=1)

    def forward(self, x):
        y = self.a(x).clone()
        y[:, :2] = 0.0  # positions written in the code
        return self.b(y)


class ConstantSplit(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(3, 4, 3, padding=1)
        self.c = nn.Conv2d(9, 4, 1)

    def forward(self, x):
        p, q = self.a(x).split([3, 5], dim=1)
        return self.c(torch.cat([self.b(x), q], 1)) + p.sum(1, keepdim=True)


class ConstantView(nn.Module):
    """``view(n, 16, -1)`` bakes the channel count; the probe must find it."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 16, 3, padding=1)
        self.b = nn.Conv2d(3, 8, 3, padding=1)
        self.c = nn.Conv2d(8, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x):
        n = x.shape[0]
        y = self.a(x).view(n, 16, -1).sum(1)  # baked 16
        z = self.c(F.relu(self.b(x)))
        return self.fc(z.flatten(1)) + y[:, :3]


class RatioSlice(nn.Module):
    """Forward computes ``int(x.size(1) * ratio)`` (symbolic tracers fail here)."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 6, 3, padding=1)
        self.head = nn.Conv2d(6, 2, 1)
        self.ratio = 0.5

    def forward(self, x):
        x = F.relu(self.a(x))
        k = int(x.size(1) * self.ratio)
        if k > 0:
            x = torch.cat([x[:, :k], x[:, k:] * 2], 1)
        return self.head(self.b(x))


class SqueezeExcite(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = conv_bn(3, 12)
        self.fc1 = nn.Conv2d(12, 4, 1)
        self.fc2 = nn.Conv2d(4, 12, 1)
        self.lin1 = nn.Linear(12, 5)
        self.lin2 = nn.Linear(5, 12)
        self.head = nn.Conv2d(12, 3, 1)

    def forward(self, x):
        x = F.relu(self.conv(x))
        s = torch.sigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))
        x = x * s
        b, c = x.shape[:2]
        t = torch.sigmoid(self.lin2(F.relu(self.lin1(x.mean((2, 3)))))).view(b, c, 1, 1)
        return self.head(x * t)


class ChannelShuffleView(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 12, 3, padding=1)
        self.g = nn.Conv2d(12, 12, 3, padding=1)
        self.b = nn.Conv2d(12, 4, 1)

    def forward(self, x):
        x = self.a(x)
        n, c, h, w = x.shape
        x = x.view(n, 3, c // 3, h, w).transpose(1, 2).reshape(n, c, h, w)
        return self.b(F.relu(self.g(x)))


class Grouped(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = conv_bn(3, 8)
        self.g = nn.Conv2d(8, 12, 3, padding=1, groups=4)
        self.dw = conv_bn(12, 12, groups=12)
        self.dwm = nn.Conv2d(12, 24, 3, padding=1, groups=12)  # depth multiplier 2
        self.gn = nn.GroupNorm(6, 24)
        self.b = nn.Conv2d(24, 3, 1)

    def forward(self, x):
        x = F.relu(self.a(x))
        x = F.relu(self.dw(self.g(x)))
        return self.b(F.relu(self.gn(self.dwm(x))))


class Transposed(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = conv_bn(3, 8)
        self.up = nn.ConvTranspose2d(8, 6, 2, stride=2)
        self.bn = nn.InstanceNorm2d(6, affine=True)
        self.b = nn.Conv2d(6 + 3, 4, 3, padding=1)
        self.out = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        y = F.relu(self.bn(self.up(F.relu(self.a(x)))))
        skip = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        y = F.pad(y, (0, 0, 0, 0))
        return self.out(F.relu(self.b(torch.cat([skip, y], 1))))


class FlattenLinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = conv_bn(3, 6)
        self.b = nn.Conv2d(6, 5, 3, padding=1)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(5 * 4 * 4, 7)
        self.fc2 = nn.Linear(7, 3)
        self.act = nn.PReLU(7)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.a(x)), 2)
        x = F.adaptive_avg_pool2d(self.b(x), 4)
        x = self.drop(x.view(x.size(0), -1))
        return self.fc2(self.act(self.fc(x)))


class ConcatTwice(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 6, 3, padding=1)
        self.b = nn.Conv2d(12, 4, 3, padding=1)
        self.ident = nn.Identity()

    def forward(self, x):
        y = self.ident(F.relu(self.a(x)))
        return self.b(torch.cat([y, y], 1))


class Doubler(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return g * 2


class CustomOp(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 6, 3, padding=1)
        self.b = nn.Conv2d(6, 5, 3, padding=1)
        self.c = nn.Conv2d(5, 2, 1)

    def forward(self, x):
        y = Doubler.apply(self.a(x))
        return self.c(F.relu(self.b(y)))


class Residual(nn.Module):
    """Two residual blocks, a shared conv used twice, and a LayerNorm over channels-last."""

    def __init__(self):
        super().__init__()
        self.stem = conv_bn(3, 8)
        self.b1 = conv_bn(8, 8)
        self.b2 = conv_bn(8, 8)
        self.shared = nn.Conv2d(8, 8, 1)
        self.ln = nn.LayerNorm(8)
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        x = F.relu(self.stem(x))
        x = F.relu(x + self.b1(x))
        x = F.relu(x - self.b2(x))
        x = self.shared(self.shared(x))
        x = self.ln(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.head(x)


class UnknownOp(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 6, 3, padding=1)
        self.b = nn.Conv2d(6, 4, 3, padding=1)
        self.c = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        y = torch.fft.fft2(self.a(x)).real
        return self.c(self.b(y))


ALL = {
    "chunk_split": ChunkSplit,
    "constant_slice": ConstantSlice,
    "constant_split": ConstantSplit,
    "constant_setitem": ConstantSetitem,
    "constant_view": ConstantView,
    "ratio_slice": RatioSlice,
    "squeeze_excite": SqueezeExcite,
    "channel_shuffle_view": ChannelShuffleView,
    "grouped": Grouped,
    "transposed": Transposed,
    "flatten_linear": FlattenLinear,
    "concat_twice": ConcatTwice,
    "custom_op": CustomOp,
    "residual": Residual,
    "unknown_op": UnknownOp,
}
