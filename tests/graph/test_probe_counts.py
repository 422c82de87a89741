"""A probe that does not converge keeps what reaches the op it could not verify, including the
groups that count a size of that op's module, and nothing more.

YOLO-World's ``MaxSigmoidAttnBlock`` reshapes by ``self.nh`` and ``self.hc``
(``guide.view(bs, guide.shape[1], self.nh, self.hc)``); its ``view`` kept disagreeing after
its inputs were frozen while a group still counted ``hc``, and after the fallback rounds every
group of the model was kept (yolov8n-world 1.00).
"""

from __future__ import annotations

import torch
from torch import nn

import filterprune.probe as probe
from filterprune.graph.groups import DependencyGraph
from filterprune.graph.tracer import trace


class MaxSigmoidAttn(nn.Module):
    """ultralytics' ``MaxSigmoidAttnBlock``: image channels weighted by their best text match."""

    def __init__(self, c: int = 16, nh: int = 2, gc: int = 8) -> None:
        super().__init__()
        self.nh, self.hc = nh, c // nh
        self.ec = nn.Conv2d(c, c, 1)
        self.gl = nn.Linear(gc, c)
        self.bias = nn.Parameter(torch.zeros(nh))
        self.proj_conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x, guide):
        bs, _, h, w = x.shape
        guide = self.gl(guide)
        guide = guide.view(bs, guide.shape[1], self.nh, self.hc)
        embed = self.ec(x).view(bs, self.nh, self.hc, h, w)
        aw = embed.flatten(3).transpose(2, 3) @ guide.permute(0, 2, 3, 1)
        aw = aw.max(dim=-1)[0].view(bs, self.nh, h, w)
        aw = (aw / (self.hc**0.5) + self.bias[None, :, None, None]).sigmoid()
        x = self.proj_conv(x).view(bs, self.nh, -1, h, w)
        return (x * aw.unsqueeze(2)).view(bs, -1, h, w)


class WorldLike(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.attn = MaxSigmoidAttn()
        self.free = nn.Conv2d(3, 12, 3, padding=1)
        self.head = nn.Conv2d(16 + 12, 4, 1)

    def forward(self, x, text):
        y = self.attn(torch.relu(self.stem(x)), text)
        return self.head(torch.cat([y, torch.relu(self.free(x))], 1))


def _inputs():
    return torch.randn(2, 3, 8, 8), torch.randn(2, 5, 8)


def test_an_unverified_op_keeps_its_counts_and_inputs_only(monkeypatch) -> None:
    monkeypatch.setattr(probe, "MAX_ROUNDS", 0)  # straight to the fallback rounds
    model = WorldLike()
    graph = DependencyGraph(model, trace(model, _inputs()))
    probe.verify(model, _inputs(), graph, ())
    reasons = [r for g in graph.frozen for r in g.reasons]
    assert not any("every group it could not verify is kept" in r for r in reasons)
    assert "free" in {g.name for g in graph.prunable}
