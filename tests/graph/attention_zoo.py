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
