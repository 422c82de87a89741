"""A parameter of one element in an element-wise op is a number, not a channel vector.

ultralytics' contrastive heads (YOLO-World, YOLOE) return ``x * self.logit_scale.exp() +
self.bias`` with ``logit_scale`` and ``bias`` of shape ``()`` or ``(1,)``; its depth head scales
by such a parameter too. Tracing them raised an ``IndexError`` from the layer-scale matching.
"""

from __future__ import annotations

import pytest
import torch
from exact import prune_exactly
from torch import nn


class ContrastiveHead(nn.Module):
    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.out = nn.Conv2d(16, 4, 1)
        self.logit_scale = nn.Parameter(torch.full(shape, 0.5))
        self.bias = nn.Parameter(torch.full(shape, -0.1))

    def forward(self, x):
        y = self.conv(x).relu()
        y = y * self.logit_scale.exp() + self.bias  # on the channels, not along them
        return self.out(y) * self.logit_scale.exp() + self.bias


@pytest.mark.parametrize("shape", [(), (1,)], ids=["scalar", "one_element"])
def test_a_one_element_parameter_scales_every_channel_and_the_rest_prunes(shape) -> None:
    _, pruned, plan, _ = prune_exactly("contrastive", lambda: ContrastiveHead(shape))
    assert pruned.conv.out_channels < 16
    assert pruned.logit_scale.shape == shape and "logit_scale" not in plan.removed_outputs
