"""The probe runs exactly when the model has something it could find."""

import pytest
import torch
from torch import nn

import filterprune as fp
import filterprune.api as api
from filterprune.models import create_model
from filterprune.probe import needs_probe


class Plain(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 4 * 4, 4)

    def forward(self, x):
        y = torch.relu(self.a(x))
        y = torch.max_pool2d(y + self.b(y), 2)
        return self.fc(torch.flatten(y, 1))


class HardCodedView(Plain):
    def forward(self, x):
        y = torch.relu(self.a(x))
        return self.b(y.view(y.shape[0], 8, 8, 8))


class ChecksWidth(Plain):
    """Reads a size and asserts on it: no torch op shows it, only a pruned copy fails on it."""

    def forward(self, x):
        y = torch.relu(self.a(x))
        assert y.size(1) == 8, "expects 8 channels"
        return self.b(y)


class SubclassedConv(nn.Conv2d):
    def forward(self, x):
        return super().forward(x[:, :8])


class WithSubclass(Plain):
    def __init__(self):
        super().__init__()
        self.b = SubclassedConv(8, 8, 3, padding=1)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


def _graph(model, x=None):
    return fp.analyze(model, torch.randn(2, 3, 8, 8) if x is None else x, probe=False)


def test_shape_free_model_needs_no_probe_and_analyze_skips_it(monkeypatch):
    graph = _graph(Plain())
    assert not needs_probe(graph)

    def fail(*args, **kwargs):
        raise AssertionError("probe ran")

    monkeypatch.setattr(api, "verify", fail)
    fp.analyze(Plain(), torch.randn(2, 3, 8, 8))


@pytest.mark.parametrize("cls", [HardCodedView, ChecksWidth, WithSubclass])
def test_models_with_fixed_counts_are_probed(cls):
    assert needs_probe(_graph(cls()))


def test_probe_still_freezes_a_width_assert():
    model = ChecksWidth()
    graph = fp.analyze(model, torch.randn(2, 3, 8, 8))
    assert graph.group("a").frozen
    assert any("size" in r or "fixed in code" in r for r in graph.group("a").reasons)


@pytest.mark.parametrize(
    "name, kwargs, probed",
    [
        ("resnet50", dict(width=1 / 16, stem="cifar"), False),
        ("vgg16_bn", dict(width=1 / 16, head="cifar"), False),
        ("mobilenet_v2", dict(width=0.25, small_input=True), False),
        ("unet", dict(base=4, num_classes=2), True),  # pads by computed sizes
    ],
)
def test_zoo_probe_decision(name, kwargs, probed):
    assert needs_probe(_graph(create_model(name, **kwargs), torch.randn(1, 3, 32, 32))) is probed
