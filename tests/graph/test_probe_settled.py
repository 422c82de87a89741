"""An op no pruning can reach any more does not keep the rest of the model (issue 28).

A detector returning its decoded predictions only: the box branch's distribution focal loss
(ultralytics' ``DFL``) reads ``x.view(b, 4, self.c1, a)``, which keeps the box channels whole.
Once the probe has frozen what reaches that view, it is settled: whatever still disagrees there
cannot come from pruning, so the backbone and the class branch stay prunable (they were all kept
when the probe gave up after its rounds).
"""

import torch
from exact import prune_exactly
from torch import nn


class DFL(nn.Module):
    """ultralytics' DFL: a fixed 1x1 conv taking the expectation over ``c1`` bins."""

    def __init__(self, c1=8):
        super().__init__()
        self.conv = nn.Conv2d(c1, 1, 1, bias=False).requires_grad_(False)
        self.conv.weight.data[:] = torch.arange(c1, dtype=torch.float).view(1, c1, 1, 1)
        self.c1 = c1

    def forward(self, x):
        b, _, a = x.shape
        return self.conv(x.view(b, 4, self.c1, a).transpose(2, 1).softmax(1)).view(b, 4, a)


def conv_bn(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.SiLU())


class TinyDetector(nn.Module):
    def __init__(self, bins=8, classes=3):
        super().__init__()
        self.backbone = nn.Sequential(conv_bn(3, 16), conv_bn(16, 24))
        self.box = nn.Sequential(conv_bn(24, 16), nn.Conv2d(16, 4 * bins, 1))
        self.cls = nn.Sequential(conv_bn(24, 16), nn.Conv2d(16, classes, 1))
        self.dfl = DFL(bins)
        self.bins, self.classes = bins, classes
        self.no = 4 * bins + classes  # outputs per anchor, as ultralytics' Detect

    def forward(self, x):
        f = self.backbone(x)
        b = f.shape[0]
        out = torch.cat((self.box(f), self.cls(f)), 1).view(b, self.no, -1)
        box, cls = out.split((self.bins * 4, self.classes), 1)
        return torch.cat((self.dfl(box), cls.sigmoid()), 1)


def test_the_backbone_and_branches_prune_beside_a_settled_view():
    original, pruned, plan, graph = prune_exactly("tiny_detector", TinyDetector)
    assert pruned.backbone[1][0].out_channels < 24
    assert pruned.box[0][0].out_channels < 16 and pruned.cls[0][0].out_channels < 16
    assert pruned.box[1].out_channels == 32 and pruned.dfl.c1 == 8  # the bins stay
    kept = [g.name for g in graph.frozen]
    assert "backbone.1.0" not in kept, graph.report()
