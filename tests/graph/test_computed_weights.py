"""Layers whose effective weight is computed from the stored one (tests/graph/test_computed_weights.py).

Weight standardisation (NFNet's ``ScaledStdConv2d``, BiT's ``StdConv2d``), weight norm (legacy
hooks and parametrizations) and spectral norm compute every filter's weight from statistics over
its input channels (spectral norm: over the whole matrix). Removing an input channel then changes
the kept filters: the pruned model is not the original with that channel zeroed. Such channels
are kept, with a reason naming the layer; what stays exact (the filters of a per-filter
standardisation or of a ``dim=0`` weight norm) is still pruned. Every model is checked with the
plain masked oracle (no ``restrict_norms``), which the old behaviour failed by ~100 %.
"""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations, weight_norm

import filterprune as fp
from filterprune.testing import (
    calibrate_batchnorm,
    max_difference,
    output_change,
    randomize_norms,
)


class StdConv(nn.Conv2d):
    """Weight standardised per filter over (in, kh, kw), with an optional per-filter gain."""

    def __init__(self, cin, cout, k, *, stride=1, groups=1, gain=True, eps=1e-5):
        super().__init__(cin, cout, k, stride, k // 2, groups=groups)
        self.gain = nn.Parameter(torch.rand(cout, 1, 1, 1) + 0.5) if gain else None
        self.eps = eps

    def forward(self, x):
        w = self.weight
        mean = w.mean(dim=(1, 2, 3), keepdim=True)
        var = w.var(dim=(1, 2, 3), keepdim=True, unbiased=False)
        w = (w - mean) / torch.sqrt(var + self.eps)
        if self.gain is not None:
            w = w * self.gain
        return F.conv2d(x, w, self.bias, self.stride, self.padding, self.dilation, self.groups)


class ConvForwardStd(nn.Conv2d):
    """Standardises in ``_conv_forward`` (``forward`` is nn.Conv2d's own)."""

    def _conv_forward(self, x, weight, bias):
        w = weight - weight.mean(dim=(1, 2, 3), keepdim=True)
        w = w / w.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        return super()._conv_forward(x, w, bias)


class CenteredLinear(nn.Linear):
    """A user's own weight-centred linear: ``W - mean over inputs`` per output row."""

    def forward(self, x):
        return F.linear(x, self.weight - self.weight.mean(dim=1, keepdim=True), self.bias)


class Net(nn.Module):
    """conv -> BN -> conv(-> BN) -> residual -> pool -> linear -> linear."""

    def __init__(self, conv, linear=nn.Linear, *, residual=True):
        super().__init__()
        self.residual = residual
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.conv = conv(16, 16)
        self.bn = nn.BatchNorm2d(16)
        self.head = nn.Sequential(nn.Conv2d(16, 24, 1), nn.BatchNorm2d(24), nn.ReLU())
        self.fc1 = linear(24, 20)
        self.fc2 = nn.Linear(20, 5)

    def forward(self, x):
        x = self.stem(x)
        y = F.relu(self.bn(self.conv(x)))
        x = x + y if self.residual else y  # without: conv's filters are a group of their own
        x = self.head(x).mean((2, 3))
        return self.fc2(F.relu(self.fc1(x)))


#: Every group loses its share, every layer kind: the exactness checks reach every layer.
EVERY_GROUP = {"scope": "per_group", "layer_types": ()}


def _x(seed=0):
    return torch.randn(4, 3, 12, 12, generator=torch.Generator().manual_seed(seed))


CONVS = {
    "std_conv_gain": lambda i, o: StdConv(i, o, 3),
    "std_conv": lambda i, o: StdConv(i, o, 3, gain=False),
    "std_conv_grouped": lambda i, o: StdConv(i, o, 3, groups=4),
    "std_conv_forward_method": lambda i, o: ConvForwardStd(i, o, 3, padding=1),
    "legacy_weight_norm": lambda i, o: weight_norm(nn.Conv2d(i, o, 3, padding=1)),
    "legacy_weight_norm_all": lambda i, o: weight_norm(nn.Conv2d(i, o, 3, padding=1), dim=None),
    "legacy_spectral_norm": lambda i, o: nn.utils.spectral_norm(nn.Conv2d(i, o, 3, padding=1)),
    "weight_norm": lambda i, o: parametrizations.weight_norm(nn.Conv2d(i, o, 3, padding=1)),
    "spectral_norm": lambda i, o: parametrizations.spectral_norm(nn.Conv2d(i, o, 3, padding=1)),
}
LINEARS = {
    "centered_linear": CenteredLinear,
    "legacy_weight_norm_linear": lambda i, o: weight_norm(nn.Linear(i, o)),
    "legacy_weight_norm_dim1_linear": lambda i, o: weight_norm(nn.Linear(i, o), dim=1),
    "spectral_norm_linear": lambda i, o: parametrizations.spectral_norm(nn.Linear(i, o)),
}


def _model(name, residual=True):
    torch.manual_seed(0)
    if name in CONVS:
        return Net(CONVS[name], residual=residual)
    return Net(lambda i, o: nn.Conv2d(i, o, 3, padding=1), linear=LINEARS[name])


def _prune(name, amount=0.3):
    model = _model(name)
    calibrate_batchnorm(model, [_x(s) for s in range(3)])
    randomize_norms(model, statistics=False)
    model.eval()
    x = _x()
    assert output_change(model, x, _x(1)) > 1e-2  # the oracle has signal
    original = copy.deepcopy(model)
    graph = fp.analyze(model, x)
    plan = fp.prune(model, x, amount=amount, criterion="l1", graph=graph, **EVERY_GROUP)
    with torch.no_grad():
        scale = float(original(x).abs().max())
    diff = max_difference(original, model, plan, x) / scale
    assert diff < 1e-5, f"{name}: the pruned model differs from the masked original by {diff:.1%}"
    return original, model, plan, graph


def _frozen_reasons(graph, group):
    return [r for g in graph.frozen if g.name == group for r in g.reasons]


@pytest.mark.parametrize("name", sorted(CONVS) + sorted(LINEARS))
def test_pruned_model_equals_the_masked_original(name):
    original, model, plan, graph = _prune(name)
    assert fp.param_count(model) < fp.param_count(original)


@pytest.mark.parametrize("name", sorted(CONVS))
def test_inputs_of_a_computed_weight_are_kept_with_a_reason_naming_the_layer(name):
    _, model, _, graph = _prune(name)
    assert model.conv.in_channels == 16
    reasons = _frozen_reasons(graph, "stem.0")
    assert any("'conv'" in r and "computes its weight" in r for r in reasons), reasons


@pytest.mark.parametrize("name", ["std_conv_gain", "std_conv", "legacy_weight_norm"])
def test_filters_of_a_per_filter_computed_weight_stay_prunable(name):
    model = _model(name, residual=False)
    graph = fp.analyze(model, _x())
    assert "conv" in {g.name for g in graph.prunable}
    assert "stem.0" in {g.name for g in graph.frozen}
    with torch.no_grad():
        model(_x())  # a legacy weight norm's ``weight`` is a leaf again: copy.deepcopy works
    original = copy.deepcopy(model).eval()
    plan = fp.prune(model, _x(), amount=0.3, graph=graph, **EVERY_GROUP)
    assert max_difference(original, model, plan, _x()) < 1e-5 * float(original(_x()).abs().max())
    assert model.conv.out_channels < 16
    if name == "std_conv_gain":
        assert model.conv.gain.shape == (model.conv.out_channels, 1, 1, 1)
    if name == "legacy_weight_norm":
        assert model.conv.weight_g.shape == (model.conv.out_channels, 1, 1, 1)
        assert model.conv.weight.shape[0] == model.conv.out_channels


@pytest.mark.parametrize(
    "name", ["spectral_norm", "legacy_spectral_norm", "legacy_weight_norm_all", "weight_norm"]
)
def test_a_weight_computed_from_the_whole_tensor_keeps_its_filters(name):
    model = _model(name, residual=False)
    graph = fp.analyze(model, _x())
    assert {"conv", "stem.0"} <= {g.name for g in graph.frozen}
    reasons = _frozen_reasons(graph, "conv")
    assert any("removing output channels" in r for r in reasons), reasons


def test_weight_norm_over_input_columns_keeps_the_filters_and_prunes_inputs():
    _, model, _, graph = _prune("legacy_weight_norm_dim1_linear")
    assert model.fc1.in_features < 24 and model.fc1.out_features == 20
    assert model.fc1.weight_g.shape == (1, model.fc1.in_features)


def test_grouped_standardised_conv_keeps_its_inputs_and_prunes_whole_groups():
    _, model, _, graph = _prune("std_conv_grouped")
    assert model.conv.in_channels == 16
    model = _model("std_conv_grouped")
    x = _x()
    original = copy.deepcopy(model).eval()
    plan = fp.prune(model, x, amount=0.3, grouped="whole", **EVERY_GROUP)
    assert model.conv.groups < 4
    assert max_difference(original, model, plan, x) < 1e-5 * float(original(x).abs().max())


def test_the_masked_oracle_catches_pruned_inputs_of_a_standardised_conv():
    model = _model("std_conv").eval()
    x = _x()
    original = copy.deepcopy(model)
    plan = fp.Plan(
        removed_outputs={"stem.0": [0, 1], "stem.1": [0, 1]},
        removed_inputs={"conv": [0, 1], "head.0": [0, 1]},
        channels={"stem.0": [3, 16], "stem.1": [16, 16], "conv": [16, 16], "head.0": [16, 24]},
    )
    plan.removed_outputs["conv"] = [0, 1]
    plan.removed_outputs["bn"] = [0, 1]
    plan.channels["bn"] = [16, 16]
    fp.apply_plan(model, plan)
    with torch.no_grad():
        scale = float(original(x).abs().max())
    assert max_difference(original, model, plan, x) / scale > 1e-2
    assert max_difference(original, model, plan, x, restrict_norms=True) / scale > 1e-2


def test_legacy_weight_norm_model_analyses_after_a_forward():
    model = _model("legacy_weight_norm")
    model(_x())  # ``weight`` is now a non-leaf tensor attribute: plain deepcopy fails on it
    graph = fp.analyze(model, _x(), probe=True)
    assert "stem.0" in {g.name for g in graph.frozen}
    copy_ = fp.testing.masked_copy(model, fp.Plan())
    assert torch.equal(copy_(_x()), model(_x()))


@pytest.mark.parametrize("name", sorted(CONVS) + sorted(LINEARS))
def test_folded_model_computes_the_same_and_prunes_exactly(name):
    model = _model(name)
    calibrate_batchnorm(model, [_x(s) for s in range(3)])
    randomize_norms(model, statistics=False)
    x = _x()
    with torch.no_grad():
        before = model.eval()(x)
    folded = fp.fold_computed_weights(model)
    assert folded == (["fc1"] if name in LINEARS else ["conv"])
    with torch.no_grad():
        scale = float(before.abs().max())
        assert float((model(x) - before).abs().max()) / scale < 1e-5
    assert type(model.conv) is nn.Conv2d and type(model.fc1) is nn.Linear
    original = copy.deepcopy(model)
    plan = fp.prune(model, x, amount=0.3, criterion="l1", **EVERY_GROUP)
    assert model.conv.in_channels < 16
    assert max_difference(original, model, plan, x) / scale < 1e-5


class PaddedStdConv(StdConv):
    """Pads by itself and crops, so a plain conv computes something else."""

    def forward(self, x):
        return super().forward(F.pad(x, (1, 0, 1, 0)))[..., :-1, :-1]


class SamePadStdConv(StdConv):
    """Like timm's "Same" convs: ``padding=0``, padded inside ``forward``."""

    def __init__(self, cin, cout, k):
        super().__init__(cin, cout, k)
        self.padding = (0, 0)

    def forward(self, x):
        return super().forward(F.pad(x, (1, 1, 1, 1)))


@pytest.mark.parametrize("cls", [PaddedStdConv, SamePadStdConv])
def test_a_forward_that_does_more_than_apply_a_weight_is_not_folded(cls):
    model = Net(lambda i, o: cls(i, o, 3)).eval()
    assert fp.fold_computed_weights(model) == []
    assert type(model.conv) is cls and model.conv.gain.shape == (16, 1, 1, 1)
    graph = fp.analyze(model, _x())
    assert "stem.0" in {g.name for g in graph.frozen}
