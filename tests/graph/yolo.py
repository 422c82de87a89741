"""A small YOLO-style detector of our own (the layout of recent YOLO generations, tiny widths).

Backbone with C3k2 blocks (C2f with nested C3k: ``chunk`` and ``cat``), SPPF (repeated max
pooling, ``cat``), a C2PSA attention block (``split`` by sizes, multi-head attention through
``view`` by attributes), an FPN/PAN neck and a decoupled multi-scale head whose output channel
counts (box distributions and classes) are fixed, decoded by a DFL conv with fixed weights.
"""

import torch
from torch import nn


class Conv(nn.Module):
    def __init__(self, c1, c2, k=1, s=1, g=1, act=True):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2, groups=g, bias=False)
        self.bn = nn.BatchNorm2d(c2)
        self.act = nn.SiLU() if act else nn.Identity()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    def __init__(self, c1, c2, shortcut=True, e=0.5):
        super().__init__()
        c = int(c2 * e)
        self.cv1, self.cv2 = Conv(c1, c, 3), Conv(c, c2, 3)
        self.add = shortcut and c1 == c2

    def forward(self, x):
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    def __init__(self, c1, c2, n=1, shortcut=False, e=0.5):
        super().__init__()
        self.c = int(c2 * e)
        self.cv1 = Conv(c1, 2 * self.c, 1)
        self.cv2 = Conv((2 + n) * self.c, c2, 1)
        self.m = nn.ModuleList(Bottleneck(self.c, self.c, shortcut, e=1.0) for _ in range(n))

    def forward(self, x):
        y = list(self.cv1(x).chunk(2, 1))
        y.extend(m(y[-1]) for m in self.m)
        return self.cv2(torch.cat(y, 1))


class C3k(nn.Module):
    def __init__(self, c1, c2, n=2, e=0.5):
        super().__init__()
        c = int(c2 * e)
        self.cv1, self.cv2, self.cv3 = Conv(c1, c, 1), Conv(c1, c, 1), Conv(2 * c, c2, 1)
        self.m = nn.Sequential(*(Bottleneck(c, c, e=1.0) for _ in range(n)))

    def forward(self, x):
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


class C3k2(C2f):
    def __init__(self, c1, c2, n=1, c3k=False, e=0.5):
        super().__init__(c1, c2, n, e=e)
        if c3k:
            self.m = nn.ModuleList(C3k(self.c, self.c) for _ in range(n))


class SPPF(nn.Module):
    def __init__(self, c1, c2, k=5):
        super().__init__()
        c = c1 // 2
        self.cv1, self.cv2 = Conv(c1, c, 1), Conv(4 * c, c2, 1)
        self.m = nn.MaxPool2d(k, 1, k // 2)

    def forward(self, x):
        y = [self.cv1(x)]
        y.extend(self.m(y[-1]) for _ in range(3))
        return self.cv2(torch.cat(y, 1))


class Attention(nn.Module):
    def __init__(self, dim, num_heads=2, attn_ratio=0.5):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.key_dim = int(self.head_dim * attn_ratio)
        self.scale = self.key_dim**-0.5
        self.qkv = Conv(dim, dim + 2 * self.key_dim * num_heads, 1, act=False)
        self.proj = Conv(dim, dim, 1, act=False)
        self.pe = Conv(dim, dim, 3, g=dim, act=False)

    def forward(self, x):
        b, c, h, w = x.shape
        n = h * w
        qkv = self.qkv(x).view(b, self.num_heads, self.key_dim * 2 + self.head_dim, n)
        q, k, v = qkv.split([self.key_dim, self.key_dim, self.head_dim], dim=2)
        attn = ((q.transpose(-2, -1) @ k) * self.scale).softmax(dim=-1)
        x = (v @ attn.transpose(-2, -1)).view(b, c, h, w) + self.pe(v.reshape(b, c, h, w))
        return self.proj(x)


class PSABlock(nn.Module):
    def __init__(self, c, num_heads=2):
        super().__init__()
        self.attn = Attention(c, num_heads)
        self.ffn = nn.Sequential(Conv(c, 2 * c, 1), Conv(2 * c, c, 1, act=False))

    def forward(self, x):
        x = x + self.attn(x)
        return x + self.ffn(x)


class C2PSA(nn.Module):
    def __init__(self, c1, c2, e=0.5):
        super().__init__()
        self.c = int(c1 * e)
        self.cv1, self.cv2 = Conv(c1, 2 * self.c, 1), Conv(2 * self.c, c2, 1)
        self.m = nn.Sequential(PSABlock(self.c))

    def forward(self, x):
        a, b = self.cv1(x).split((self.c, self.c), dim=1)
        return self.cv2(torch.cat((a, self.m(b)), 1))


class DFL(nn.Module):
    """Distribution focal loss decoding: expected value of each side's distribution."""

    def __init__(self, c1=16):
        super().__init__()
        self.conv = nn.Conv2d(c1, 1, 1, bias=False).requires_grad_(False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.arange(c1, dtype=torch.float).view(1, c1, 1, 1))
        self.c1 = c1

    def forward(self, x):
        b, _, a = x.shape
        return self.conv(x.view(b, 4, self.c1, a).transpose(2, 1).softmax(1)).view(b, 4, a)


class Detect(nn.Module):
    def __init__(self, nc=3, ch=(16, 32, 64), reg_max=16):
        super().__init__()
        self.nc, self.reg_max, self.no = nc, reg_max, nc + 4 * reg_max
        c2, c3 = max(16, ch[0] // 4, 4 * reg_max), max(ch[0], nc)
        self.cv2 = nn.ModuleList(
            nn.Sequential(Conv(x, c2, 3), Conv(c2, c2, 3), nn.Conv2d(c2, 4 * reg_max, 1))
            for x in ch
        )
        self.cv3 = nn.ModuleList(
            nn.Sequential(Conv(x, c3, 3), Conv(c3, c3, 3), nn.Conv2d(c3, nc, 1)) for x in ch
        )
        self.dfl = DFL(reg_max)

    def forward(self, xs):
        xs = [torch.cat((b(x), c(x)), 1) for x, b, c in zip(xs, self.cv2, self.cv3, strict=True)]
        flat = torch.cat([x.view(x.shape[0], self.no, -1) for x in xs], 2)
        box, cls = flat.split((4 * self.reg_max, self.nc), 1)
        return torch.cat((self.dfl(box), cls.sigmoid()), 1)


class TinyYOLO(nn.Module):
    def __init__(self, nc=3):
        super().__init__()
        self.stem = nn.Sequential(Conv(3, 8, 3, 2), Conv(8, 16, 3, 2), C3k2(16, 32))
        self.p3 = nn.Sequential(Conv(32, 32, 3, 2), C3k2(32, 32))
        self.p4 = nn.Sequential(Conv(32, 64, 3, 2), C3k2(64, 64, c3k=True))
        self.p5 = nn.Sequential(
            Conv(64, 64, 3, 2), C3k2(64, 64, c3k=True), SPPF(64, 64), C2PSA(64, 64)
        )
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.n4 = C3k2(128, 32)
        self.n3 = C3k2(64, 16)
        self.down3 = Conv(16, 16, 3, 2)
        self.o4 = C3k2(48, 32)
        self.down4 = Conv(32, 32, 3, 2)
        self.o5 = C3k2(96, 64, c3k=True)
        self.detect = Detect(nc, (16, 32, 64))

    def forward(self, x):
        p3 = self.p3(self.stem(x))
        p4 = self.p4(p3)
        p5 = self.p5(p4)
        n4 = self.n4(torch.cat((self.up(p5), p4), 1))
        o3 = self.n3(torch.cat((self.up(n4), p3), 1))
        o4 = self.o4(torch.cat((self.down3(o3), n4), 1))
        o5 = self.o5(torch.cat((self.down4(o4), p5), 1))
        return self.detect([o3, o4, o5])
