"""Surgery keeps tensors' properties; custom leaves; counting."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import filterprune as fp
from filterprune.testing import max_difference


class Scale(nn.Module):
    """A per-channel scale the tracer cannot see into unless registered."""

    def __init__(self, channels):
        super().__init__()
        self.channels = channels
        self.gamma = nn.Parameter(torch.linspace(0.5, 1.5, channels))

    def forward(self, x):
        return x * self.gamma.view(1, -1, 1, 1)


class WithScale(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.scale = Scale(8)
        self.b = nn.Conv2d(8, 4, 3, padding=1)

    def forward(self, x):
        return self.b(F.relu(self.scale(self.a(x))))


def test_unregistered_parameter_view_is_a_member_then_registered_leaf_prunes():
    x = torch.randn(2, 3, 8, 8)
    model = WithScale()
    original = copy.deepcopy(model)
    graph = fp.analyze(model, x)
    assert not graph.group("a").frozen  # ``gamma.view(1, -1, 1, 1)`` is the parameter
    assert "scale.gamma" in {m.module for m in graph.group("a").members}
    plan = fp.prune(model, x, amount=0.5, criterion="l1", graph=graph)
    assert model.scale.gamma.shape == (4,)
    assert max_difference(original, model, plan, x) < 1e-5
    fp.register_leaf(Scale, channel_params=["gamma"], count_attr="channels")
    try:
        model = WithScale()
        original = copy.deepcopy(model)
        plan = fp.prune(model, x, amount=0.5, criterion="l1")
        assert model.scale.gamma.shape == (4,) and model.scale.channels == 4
        assert max_difference(original, model, plan, x) < 1e-5
    finally:
        from filterprune.graph.specs import _REGISTRY

        _REGISTRY.remove(Scale)


def test_surgery_keeps_dtype_requires_grad_and_slices_grad():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 3)
    ).double()
    model[0].bias.requires_grad_(False)
    x = torch.randn(2, 3, 10, 10, dtype=torch.float64)
    model(x).sum().backward()
    grad_before = model[3].weight.grad.clone()
    plan = fp.prune(model, x, amount=0.5, criterion="l1")
    kept_in = [i for i in range(8) if i not in plan.removed_inputs["3"]]
    assert model[0].weight.dtype == torch.float64 and model[1].running_mean.dtype == torch.float64
    assert model[0].bias.requires_grad is False and model[0].weight.requires_grad is True
    assert model[3].weight.grad.shape == model[3].weight.shape
    assert torch.equal(model[3].weight.grad, grad_before[:, kept_in])
    assert model[0].out_channels == 4 and model[1].num_features == 4 and model[3].in_channels == 4
    assert "Conv2d(3, 4" in repr(model)


def test_count_matches_hand_computation():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 8 * 8, 5))
    counts = fp.count(model, torch.randn(1, 3, 8, 8))
    assert counts.macs == 4 * 3 * 9 * 64 + 256 * 5
    assert counts.params == sum(p.numel() for p in model.parameters())


def test_min_channels_never_leaves_a_layer_empty():
    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU(), nn.Conv2d(2, 3, 3))
    fp.prune(model, torch.randn(1, 3, 8, 8), amount=0.99, criterion="l1")
    assert model[0].out_channels == 1


def test_trace_error_names_the_problem():
    model = nn.Sequential(nn.Conv2d(3, 4, 3))
    with pytest.raises(fp.TraceError, match="example inputs"):
        fp.analyze(model, torch.randn(1, 5, 8, 8))
