"""Small models of our own, one per architecture pattern of public CNN families.

Each reproduces the channel pattern that once made filterprune crash, keep a model whole or prune
less than it exactly can: NFNet's scaled weight-standardised conv, Res2Net's split by a width
attribute, SKNet's selective kernel, ConvNeXt (V1 channels-first LayerNorm with layer scale, V2
with Global Response Normalization), ResNeXt's grouped conv, GhostNet's ghost module and a
MobileViT-style transformer block inside a CNN.
"""

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_act(cin, cout, k=3, stride=1, groups=1):
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
    )


# ----- NFNet: weight standardisation with a per-output-channel gain ---------------------------
class ScaledStdConv2d(nn.Conv2d):
    """A conv whose weight is standardised per filter and scaled by a learnable gain."""

    def __init__(self, cin, cout, k, padding=0, eps=1e-6):
        super().__init__(cin, cout, k, padding=padding)
        self.gain = nn.Parameter(torch.ones(cout, 1, 1, 1))
        self.scale = (cin * k * k) ** -0.5
        self.eps = eps

    def forward(self, x):
        weight = F.batch_norm(
            self.weight.reshape(1, self.out_channels, -1),
            None,
            None,
            weight=(self.gain * self.scale).view(-1),
            training=True,
            momentum=0.0,
            eps=self.eps,
        ).reshape_as(self.weight)
        return F.conv2d(x, weight, self.bias, self.stride, self.padding)


class NFNetLike(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = ScaledStdConv2d(3, 16, 3, padding=1)
        self.conv1 = ScaledStdConv2d(16, 16, 3, padding=1)
        self.conv2 = ScaledStdConv2d(16, 12, 1)
        self.head = nn.Linear(12, 4)

    def forward(self, x):
        x = F.gelu(self.stem(x))
        x = x + F.gelu(self.conv1(x)) * 0.2
        return self.head(F.gelu(self.conv2(x)).mean((2, 3)))


# ----- Res2Net: split by an int attribute, hierarchical per-scale convs -----------------------
class Res2NetBlock(nn.Module):
    def __init__(self, channels=16, width=4, scales=4):
        super().__init__()
        self.width, self.nums = width, scales - 1
        self.conv1 = conv_bn_act(channels, width * scales, 1)
        self.convs = nn.ModuleList(conv_bn_act(width, width) for _ in range(self.nums))
        self.conv3 = nn.Sequential(
            nn.Conv2d(width * scales, channels, 1, bias=False), nn.BatchNorm2d(channels)
        )

    def forward(self, x):
        out = self.conv1(x)
        spx = torch.split(out, self.width, 1)
        sp = spx[0]
        outs = []
        for i, conv in enumerate(self.convs):
            sp = spx[i] if i == 0 else sp + spx[i]
            sp = conv(sp)
            outs.append(sp)
        outs.append(spx[self.nums])
        return F.relu(self.conv3(torch.cat(outs, 1)) + x)


class Res2NetLike(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = conv_bn_act(3, 16)
        # more blocks than the probe once had rounds: every split line must be found
        self.blocks = nn.Sequential(*(Res2NetBlock() for _ in range(10)))
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        return self.fc(self.blocks(self.stem(x)).mean((2, 3)))


# ----- SKNet: selective kernel, attention reshaped by attribute-derived sizes ------------------
class SKConv(nn.Module):
    def __init__(self, features=16, branches=2, reduction=4):
        super().__init__()
        self.M, self.features = branches, features
        d = max(features // reduction, 4)
        self.convs = nn.ModuleList(
            conv_bn_act(features, features, 3 + 2 * i) for i in range(branches)
        )
        self.fc = nn.Sequential(nn.Conv2d(features, d, 1, bias=False), nn.BatchNorm2d(d), nn.ReLU())
        self.fcs = nn.ModuleList(nn.Conv2d(d, features, 1) for _ in range(branches))

    def forward(self, x):
        b = x.shape[0]
        feats = torch.cat([conv(x) for conv in self.convs], dim=1)
        feats = feats.view(b, self.M, -1, feats.shape[2], feats.shape[3])
        z = self.fc(feats.sum(dim=1).mean((2, 3), keepdim=True))
        att = torch.cat([fc(z) for fc in self.fcs], dim=1)
        att = att.view(b, self.M, -1, 1, 1).softmax(dim=1)  # over the branches of each channel
        return (feats * att).sum(dim=1)


class SKConvFixed(SKConv):
    """The same block with its sizes read from attributes: the probe must keep its channels."""

    def forward(self, x):
        b = x.shape[0]
        feats = torch.cat([conv(x) for conv in self.convs], dim=1)
        feats = feats.view(b, self.M, self.features, feats.shape[2], feats.shape[3])
        z = self.fc(feats.sum(dim=1).mean((2, 3), keepdim=True))
        att = torch.cat([fc(z) for fc in self.fcs], dim=1)
        att = att.view(b, self.M, self.features, 1, 1).softmax(dim=1)
        return (feats * att).sum(dim=1)


class SKNetLike(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = conv_bn_act(3, 16)
        self.conv1 = conv_bn_act(16, 16, 1)
        self.sk = SKConv()
        self.conv3 = nn.Sequential(nn.Conv2d(16, 24, 1, bias=False), nn.BatchNorm2d(24))
        self.fc = nn.Linear(24, 5)

    def forward(self, x):
        x = self.stem(x)
        return self.fc(F.relu(self.conv3(self.sk(self.conv1(x)))).mean((2, 3)))


class SKNetFixedLike(SKNetLike):
    def __init__(self):
        super().__init__()
        self.sk = SKConvFixed()


# ----- ConvNeXt: channels-first LayerNorm, channels-last MLP, layer scale ----------------------
class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW tensor (ConvNeXt's downsampling and heads)."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class GRN(nn.Module):
    """Global Response Normalization (ConvNeXt-V2), channels last."""

    def __init__(self, dim):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, dim))
        self.beta = nn.Parameter(torch.zeros(1, 1, 1, dim))

    def forward(self, x):
        gx = torch.norm(x, p=2, dim=(1, 2), keepdim=True)
        nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)
        return self.gamma * (x * nx) + self.beta + x


class CNBlock(nn.Module):
    def __init__(self, dim, v2=False):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.grn = GRN(4 * dim) if v2 else nn.Identity()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.layer_scale = None if v2 else nn.Parameter(torch.full((dim, 1, 1), 1e-6))

    def forward(self, x):
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pwconv2(self.grn(F.gelu(self.pwconv1(self.norm(y))))).permute(0, 3, 1, 2)
        if self.layer_scale is not None:
            y = self.layer_scale * y
        return x + y


class ConvNeXtLike(nn.Module):
    def __init__(self, v2=False, dims=(8, 16)):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, dims[0], 2, 2), LayerNorm2d(dims[0]))
        self.stage1 = nn.Sequential(CNBlock(dims[0], v2), CNBlock(dims[0], v2))
        self.down = nn.Sequential(LayerNorm2d(dims[0]), nn.Conv2d(dims[0], dims[1], 2, 2))
        self.stage2 = nn.Sequential(CNBlock(dims[1], v2))
        self.norm = nn.LayerNorm(dims[1])
        self.head = nn.Linear(dims[1], 5)

    def forward(self, x):
        x = self.stage2(self.down(self.stage1(self.stem(x))))
        return self.head(self.norm(x.mean((2, 3))))


class ConvNeXtV2Like(ConvNeXtLike):
    def __init__(self):
        super().__init__(v2=True)


# ----- ResNeXt: grouped 3x3 conv in a bottleneck ------------------------------------------------
class ResNeXtLike(nn.Module):
    def __init__(self, groups=4, group_width=4):
        super().__init__()
        width = groups * group_width
        self.stem = conv_bn_act(3, 16)
        self.conv1 = conv_bn_act(16, width, 1)
        self.conv2 = conv_bn_act(width, width, 3, groups=groups)
        self.conv3 = nn.Sequential(nn.Conv2d(width, 16, 1, bias=False), nn.BatchNorm2d(16))
        self.gn = nn.GroupNorm(4, 16)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        x = self.stem(x)
        x = F.relu(x + self.conv3(self.conv2(self.conv1(x))))
        return self.fc(F.relu(self.gn(x)).mean((2, 3)))


# ----- GhostNet: primary conv, cheap depthwise conv, concatenation, then a slice ---------------
class GhostModule(nn.Module):
    def __init__(self, cin, oup, ratio=2, relu=True):
        super().__init__()
        self.oup = oup
        init = -(-oup // ratio)
        act = nn.ReLU() if relu else nn.Identity()
        self.primary_conv = nn.Sequential(
            nn.Conv2d(cin, init, 1, bias=False), nn.BatchNorm2d(init), act
        )
        self.cheap_operation = nn.Sequential(
            nn.Conv2d(init, init * (ratio - 1), 3, 1, 1, groups=init, bias=False),
            nn.BatchNorm2d(init * (ratio - 1)),
            nn.ReLU() if relu else nn.Identity(),
        )

    def forward(self, x):
        x1 = self.primary_conv(x)
        x2 = self.cheap_operation(x1)
        out = torch.cat([x1, x2], dim=1)
        return out[:, : self.oup]


class GhostBottleneck(nn.Module):
    def __init__(self, cin, mid, cout):
        super().__init__()
        self.ghost1 = GhostModule(cin, mid)
        self.ghost2 = GhostModule(mid, cout, relu=False)

    def forward(self, x):
        return self.ghost2(self.ghost1(x)) + x


class GhostNetLike(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = conv_bn_act(3, 16)
        self.b1 = GhostBottleneck(16, 24, 16)
        self.b2 = GhostBottleneck(16, 23, 16)  # odd width: the slice drops a cheap channel
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        return self.fc(self.b2(self.b1(self.stem(x))).mean((2, 3)))


# ----- MobileViT-style: a transformer block with LayerNorms inside a CNN ------------------------
class Attention(nn.Module):
    """Multi-head self-attention over tokens ``(B, N, C)``, head size computed from ``C``."""

    def __init__(self, dim, heads):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        attn = (q @ k.transpose(-2, -1) * self.scale).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, -1))


class MobileViTBlockLike(nn.Module):
    def __init__(self, channels=16, dim=12, heads=2):
        super().__init__()
        self.local = conv_bn_act(channels, channels)
        self.proj_in = nn.Conv2d(channels, dim, 1, bias=False)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.SiLU(), nn.Linear(2 * dim, dim))
        self.proj_out = conv_bn_act(dim, channels, 1)

    def forward(self, x):
        y = self.proj_in(self.local(x))
        b, c, h, w = y.shape
        t = y.flatten(2).transpose(1, 2)
        t = t + self.attn(self.norm1(t))
        t = t + self.mlp(self.norm2(t))
        y = t.transpose(1, 2).reshape(b, c, h, w)
        return x + self.proj_out(y)


class MobileViTLike(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = conv_bn_act(3, 16)
        self.block = MobileViTBlockLike()
        self.head = nn.Sequential(nn.Conv2d(16, 20, 1), nn.GroupNorm(1, 20), nn.SiLU())
        self.fc = nn.Linear(20, 5)

    def forward(self, x):
        return self.fc(self.head(self.block(self.stem(x))).mean((2, 3)))


PATTERNS = {
    "nfnet": NFNetLike,
    "res2net": Res2NetLike,
    "sknet": SKNetLike,
    "sknet_fixed": SKNetFixedLike,
    "convnext": ConvNeXtLike,
    "convnext_v2": ConvNeXtV2Like,
    "resnext": ResNeXtLike,
    "ghostnet": GhostNetLike,
    "mobilevit": MobileViTLike,
}
