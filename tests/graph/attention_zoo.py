"""Small attention models, one per pattern of ViTs and CNN-attention hybrids (no timm).

Each is a few blocks wide enough for every pattern to show: fused ``qkv`` and separate
projections, ``F.scaled_dot_product_attention`` and explicit ``softmax(q @ k^T) @ v``, grouped-
query attention, windowed attention with a relative-position table, class/register tokens and a
position embedding on the residual stream, and a conv stem feeding an attention stage.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FusedAttention(nn.Module):
    """timm's ``Attention``: one ``qkv`` Linear, heads from ``self.num_heads``."""

    def __init__(self, dim, num_heads=4, fused=True):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.attn_dim = self.num_heads * self.head_dim
        self.scale = self.head_dim**-0.5
        self.fused = fused
        self.qkv = nn.Linear(dim, self.attn_dim * 3)
        self.proj = nn.Linear(self.attn_dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        if self.fused:
            x = F.scaled_dot_product_attention(q, k, v)
        else:
            attn = (q * self.scale) @ k.transpose(-2, -1)
            x = attn.softmax(dim=-1) @ v
        return self.proj(x.transpose(1, 2).reshape(B, N, self.attn_dim))


class SeparateAttention(nn.Module):
    """q, k and v from their own Linear layers; ``-1`` for the head size; k/v with fewer heads
    (grouped-query attention) when ``kv_heads`` is below ``num_heads``."""

    def __init__(self, dim, num_heads=4, kv_heads=None, gqa="repeat"):
        super().__init__()
        self.num_heads = num_heads
        self.num_kv_heads = kv_heads or num_heads
        self.head_dim = dim // num_heads
        self.gqa = gqa
        self.q = nn.Linear(dim, num_heads * self.head_dim)
        self.k = nn.Linear(dim, self.num_kv_heads * self.head_dim)
        self.v = nn.Linear(dim, self.num_kv_heads * self.head_dim)
        self.o = nn.Linear(num_heads * self.head_dim, dim)

    def forward(self, x):
        B, N, _ = x.shape
        q = self.q(x).view(B, N, self.num_heads, -1).transpose(1, 2)
        k = self.k(x).view(B, N, self.num_kv_heads, -1).transpose(1, 2)
        v = self.v(x).view(B, N, self.num_kv_heads, -1).transpose(1, 2)
        rep = self.num_heads // self.num_kv_heads
        if self.gqa == "sdpa":
            y = F.scaled_dot_product_attention(q, k, v, enable_gqa=rep > 1, scale=0.3)
        else:
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
            y = F.scaled_dot_product_attention(q, k, v)
        return self.o(y.transpose(1, 2).flatten(2))


class LiteralHeads(FusedAttention):
    """The head count and size written as numbers: nothing can read them."""

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, 4, 8).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(B, N, 32))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, attn):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), attn
        self.norm2, self.mlp = nn.LayerNorm(dim), Mlp(dim, 2 * dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyViT(nn.Module):
    """Patch embedding, class and register tokens, a position embedding, blocks, a head."""

    def __init__(self, attn=FusedAttention, dim=32, depth=2, registers=1, **options):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 4, 4)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.reg_token = nn.Parameter(torch.randn(1, registers, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, 16, dim))
        self.blocks = nn.Sequential(*[Block(dim, attn(dim, **options)) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 5)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2) + self.pos_embed
        B = x.shape[0]
        x = torch.cat([self.cls_token.expand(B, -1, -1), self.reg_token.expand(B, -1, -1), x], 1)
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


class WindowAttention(nn.Module):
    """Swin's: windows of 2x2 tokens, a learned bias per head and relative position."""

    def __init__(self, dim, num_heads=4, window=2):
        super().__init__()
        self.num_heads, self.window = num_heads, window
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(
            torch.randn((2 * window - 1) ** 2, num_heads)
        )
        coords = torch.stack(
            torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
        )
        coords = coords.flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + window - 1
        self.register_buffer(
            "relative_position_index", rel[..., 0] * (2 * window - 1) + rel[..., 1]
        )
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B_, N, C = x.shape
        qkv = self.qkv(x).reshape(B_, N, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        bias = bias.view(N, N, -1).permute(2, 0, 1).contiguous()
        attn = (attn + bias.unsqueeze(0)).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B_, N, -1))


class TinySwin(nn.Module):
    """A patch embedding, one windowed block (4x4 tokens in 2x2 windows), pooled head."""

    def __init__(self, dim=32):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 4, 4)
        self.norm0 = nn.LayerNorm(dim)
        self.norm1, self.attn = nn.LayerNorm(dim), WindowAttention(dim)
        self.norm2, self.mlp = nn.LayerNorm(dim), Mlp(dim, 2 * dim)
        self.head = nn.Linear(dim, 5)

    def forward(self, x):
        x = self.norm0(self.patch(x).permute(0, 2, 3, 1))  # B, 4, 4, C
        B, H, W, C = x.shape
        w = x.view(B, H // 2, 2, W // 2, 2, C).permute(0, 1, 3, 2, 4, 5).reshape(-1, 4, C)
        w = self.attn(self.norm1(w)).view(B, H // 2, W // 2, 2, 2, C)
        x = x + w.permute(0, 1, 3, 2, 4, 5).reshape(B, H, W, C)
        x = x + self.mlp(self.norm2(x))
        return self.head(x.mean((1, 2)))


class Hybrid(nn.Module):
    """A conv stage (BatchNorm) whose feature map becomes tokens for an attention stage."""

    def __init__(self, dim=32):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, dim, 3, 2, 1)
        )
        self.block = Block(dim, FusedAttention(dim, fused=False))
        self.head = nn.Linear(dim, 5)

    def forward(self, x):
        x = self.stem(x)
        B, C, H, W = x.shape
        t = self.block(x.flatten(2).transpose(1, 2))
        x = x + t.transpose(1, 2).reshape(B, C, H, W)
        return self.head(x.mean((2, 3)))


ZOO = {
    "vit_sdpa": lambda: TinyViT(),
    "vit_matmul": lambda: TinyViT(fused=False),
    "separate_qkv": lambda: TinyViT(SeparateAttention),
    "gqa_repeat": lambda: TinyViT(SeparateAttention, dim=64, num_heads=8, kv_heads=4),
    "gqa_sdpa": lambda: TinyViT(SeparateAttention, dim=64, num_heads=8, kv_heads=4, gqa="sdpa"),
    "literal_heads": lambda: TinyViT(LiteralHeads),
    "swin": lambda: TinySwin(),
    "hybrid": lambda: Hybrid(),
}


# ----- widths read from the input, heads cut inside, biases per head (timm's families) -------
class ReadWidthAttention(nn.Module):
    """Twins/ConViT/CaiT: ``C // self.num_heads`` for the head size and ``reshape(B, N, C)`` at
    the end, ``C`` read from ``x.shape``; q and k from one projection, v from its own, and an
    explicit ``softmax(q @ k^T) @ v`` (ConViT's GPSA)."""

    def __init__(self, dim, num_heads=4):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qk = nn.Linear(dim, dim * 2)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qk = self.qk(x).reshape(B, N, 2, self.num_heads, C // self.num_heads)
        q, k = qk.permute(2, 0, 3, 1, 4).unbind(0)
        v = self.v(x).reshape(B, N, self.num_heads, C // self.num_heads).permute(0, 2, 1, 3)
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B, N, C))


class BiasedAttention(nn.Module):
    """LeViT/TinyViT/EfficientFormer: every head's columns cut into q, k and v by
    ``split([key_dim, key_dim, val_dim])``, a learned bias per head and position gathered by an
    index buffer (``attention_biases[:, idxs]``) and given to SDPA as ``attn_mask``, cached for
    eval and dropped by ``train()``; with ``cosine``, Swin-V2's cosine attention and its logit
    scale per head, ``clamp(..).exp()``."""

    def __init__(self, dim, num_heads=4, key_dim=4, tokens=18, cosine=False):
        super().__init__()
        self.cosine = cosine
        self.num_heads, self.key_dim, self.val_dim = num_heads, key_dim, 2 * key_dim
        self.qkv = nn.Linear(dim, num_heads * (2 * key_dim + self.val_dim))
        self.proj = nn.Linear(num_heads * self.val_dim, dim)
        self.attention_biases = nn.Parameter(torch.randn(num_heads, tokens))
        idxs = torch.arange(tokens)
        self.register_buffer("idxs", (idxs[:, None] - idxs[None]).abs(), persistent=False)
        self.logit_scale = nn.Parameter(torch.log(10 * torch.rand(num_heads, 1, 1) + 1))
        self.cache: dict[str, torch.Tensor] = {}

    def train(self, mode=True):
        super().train(mode)
        if mode:
            self.cache = {}
        return self

    def biases(self):
        if self.training:
            return self.attention_biases[:, self.idxs]
        if "b" not in self.cache:
            self.cache["b"] = self.attention_biases[:, self.idxs]
        return self.cache["b"]

    def forward(self, x):
        B, N, _ = x.shape
        qkv = self.qkv(x).view(B, N, self.num_heads, -1)
        q, k, v = qkv.split([self.key_dim, self.key_dim, self.val_dim], dim=3)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        bias = self.biases()[:, :N, :N]
        if self.cosine:  # Swin-V2: cosine attention, a logit scale per head
            attn = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
            attn = attn * torch.clamp(self.logit_scale, max=4.6).exp()
            y = (attn + bias).softmax(dim=-1) @ v
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.proj(y.transpose(1, 2).reshape(B, N, -1))


class PoolingViT(nn.Module):
    """PiT: a conv pooling stage between attention stages; the class token goes through a
    Linear of its own and is concatenated with the conv's tokens (``cat`` along the tokens)."""

    def __init__(self, dim=32, attn=ReadWidthAttention):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 4, 4)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.stage1 = Block(dim, attn(dim))
        self.pool = nn.Conv2d(dim, 2 * dim, 3, 2, 1, groups=dim)
        self.fc = nn.Linear(dim, 2 * dim)
        self.stage2 = Block(2 * dim, attn(2 * dim))
        self.norm = nn.LayerNorm(2 * dim)
        self.head = nn.Linear(2 * dim, 5)

    def forward(self, x):
        x = self.patch(x)
        B, C, H, W = x.shape
        t = torch.cat([self.cls_token.expand(B, -1, -1), x.flatten(2).transpose(1, 2)], 1)
        t = self.stage1(t)
        cls, x = t[:, :1], t[:, 1:].transpose(1, 2).reshape(B, C, H, W)
        x = self.pool(x)
        t = torch.cat([self.fc(cls), x.flatten(2).transpose(1, 2)], 1)
        return self.head(self.norm(self.stage2(t))[:, 0])


ZOO.update(
    {
        "read_width": lambda: TinyViT(ReadWidthAttention),
        "biased": lambda: TinyViT(BiasedAttention),
        "cosine": lambda: TinyViT(BiasedAttention, cosine=True),
        "pooling": lambda: PoolingViT(),
    }
)


class Scale(nn.Module):
    """timm's MetaFormer ``Scale``: the view's shape kept as a tuple, ``(dim, 1, 1)``."""

    def __init__(self, dim):
        super().__init__()
        self.shape = (dim, 1, 1)
        self.scale = nn.Parameter(torch.rand(dim) + 0.5)

    def forward(self, x):
        return x * self.scale.view(self.shape)


class RelPosBias(nn.Module):
    """timm's ``RelPosBias`` (MaxViT, CoAtNet, GCViT): ``table[index].view(self.bias_shape)``
    with ``bias_shape = (N, N, num_heads)``."""

    def __init__(self, tokens, num_heads):
        super().__init__()
        self.bias_shape = (tokens, tokens, num_heads)
        self.relative_position_bias_table = nn.Parameter(torch.randn(2 * tokens - 1, num_heads))
        idx = torch.arange(tokens)
        self.register_buffer("index", (idx[:, None] - idx[None] + tokens - 1).view(-1))

    def forward(self, attn):
        bias = self.relative_position_bias_table[self.index].view(self.bias_shape)
        return attn + bias.permute(2, 0, 1).unsqueeze(0)


class RelPosAttention(FusedAttention):
    """``FusedAttention`` with its bias from a :class:`RelPosBias` submodule (MaxViT)."""

    def __init__(self, dim, num_heads=4, tokens=16):
        super().__init__(dim, num_heads, fused=False)
        self.rel_pos = RelPosBias(tokens, num_heads)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = self.rel_pos((q * self.scale) @ k.transpose(-2, -1)).softmax(-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B, N, self.attn_dim))


class ShapedStage(nn.Module):
    """A conv stage with a MetaFormer layer scale, then attention over its 16 tokens with a
    relative-position bias: the two tuples that hold a count (CAFormer, MaxViT, CoAtNet)."""

    def __init__(self, dim=32, num_heads=4):
        super().__init__()
        self.stem = nn.Conv2d(3, dim, 4, 4)
        self.conv = nn.Sequential(nn.Conv2d(dim, dim, 3, 1, 1, groups=dim), nn.BatchNorm2d(dim))
        self.res_scale = Scale(dim)
        self.norm = nn.LayerNorm(dim)
        self.attn = RelPosAttention(dim, num_heads)
        self.head = nn.Linear(dim, 5)

    def forward(self, x):
        x = self.stem(x)
        x = (self.res_scale(x) + self.conv(x)).flatten(2).transpose(1, 2)
        return self.head((x + self.attn(self.norm(x))).mean(1))


ZOO["shaped"] = lambda: ShapedStage()


class ResampledViT(TinyViT):
    """timm's ``dynamic_img_size``: the position table (here for 5 x 5 patches and the class
    token) resampled to the input's 4 x 4 (``resample_abs_pos_embed``)."""

    def __init__(self, dim=32):
        super().__init__(dim=dim)
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + 25, dim))

    def forward(self, x):
        x = self.patch(x)
        B, C, H, W = x.shape
        prefix, grid = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        grid = grid.float().reshape(1, 5, 5, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(H, W), mode="bicubic", antialias=True)
        pos = torch.cat([prefix, grid.permute(0, 2, 3, 1).reshape(1, H * W, -1)], dim=1)
        cls = self.cls_token.expand(B, -1, -1)
        x = torch.cat([cls, x.flatten(2).transpose(1, 2)], 1) + pos
        return self.head(self.norm(self.blocks(x))[:, 0])


ZOO["resampled"] = lambda: ResampledViT()


class ReducedAttention(nn.Module):
    """PVT-v2's: keys and values from a strided conv over the token grid,
    ``self.sr(x).reshape(B, C, -1)`` with ``C`` read from ``x.shape`` (the conv keeps the
    stream's width), q split with ``-1``, k and v with ``self.head_dim``."""

    def __init__(self, dim, num_heads=2, size=4):
        super().__init__()
        self.num_heads, self.head_dim, self.size = num_heads, dim // num_heads, size
        self.q, self.kv = nn.Linear(dim, dim), nn.Linear(dim, 2 * dim)
        self.sr, self.norm = nn.Conv2d(dim, dim, 2, 2), nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        q = self.q(x).reshape(B, N, self.num_heads, -1).permute(0, 2, 1, 3)
        x = x.permute(0, 2, 1).reshape(B, C, self.size, self.size)
        x = self.norm(self.sr(x).reshape(B, C, -1).permute(0, 2, 1))
        kv = self.kv(x).reshape(B, -1, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(q, *kv.unbind(0))
        return self.proj(x.transpose(1, 2).reshape(B, N, C))


class PyramidViT(nn.Module):
    """A PVT-v2 stage: patch embedding, blocks of reduced attention, mean of the tokens."""

    def __init__(self, dim=32):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 4, 4)
        self.blocks = nn.Sequential(*[Block(dim, ReducedAttention(dim)) for _ in range(2)])
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, 5)

    def forward(self, x):
        x = self.blocks(self.patch(x).flatten(2).transpose(1, 2))
        return self.head(self.norm(x).mean(1))


ZOO["reduced"] = lambda: PyramidViT()


class CrossCovarianceAttention(nn.Module):
    """XCiT's XCA: attention between a head's channels (``q @ k^T`` sums over the tokens), a
    ``temperature`` per head of shape ``(heads, 1, 1)``, ``C`` read from ``x.shape``."""

    def __init__(self, dim, num_heads=4):
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.rand(num_heads, 1, 1) + 0.5)
        self.qkv, self.proj = nn.Linear(dim, dim * 3), nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 4, 1).unbind(0)
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        attn = ((q @ k.transpose(-2, -1)) * self.temperature).softmax(dim=-1)
        return self.proj((attn @ v).permute(0, 3, 1, 2).reshape(B, N, C))


ZOO["cross_covariance"] = lambda: TinyViT(CrossCovarianceAttention)


class TalkingHeadAttention(nn.Module):
    """CaiT's talking heads: the maps mixed across heads by ``proj_l`` before the softmax and
    ``proj_w`` after it (Linear layers over the head axis), one ``num_heads`` for q, k and v."""

    def __init__(self, dim, num_heads=4):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv, self.proj = nn.Linear(dim, dim * 3), nn.Linear(dim, dim)
        self.proj_l, self.proj_w = nn.Linear(num_heads, num_heads), nn.Linear(num_heads, num_heads)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads)
        qkv = qkv.permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = self.proj_l((q @ k.transpose(-2, -1)).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        attn = self.proj_w(attn.softmax(dim=-1).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.proj((attn @ v).transpose(1, 2).reshape(B, N, C))


ZOO["talking_heads"] = lambda: TinyViT(TalkingHeadAttention)

# multi-query attention: one key/value head broadcast to every query head by SDPA
ZOO["mqa"] = lambda: TinyViT(SeparateAttention, dim=64, num_heads=8, kv_heads=1, gqa="sdpa")
