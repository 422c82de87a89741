"""Tracing on a weightless meta-device copy gives the same graph as tracing the model itself."""

import copy

import pytest
import torch
from torch import nn

import filterprune as fp
from filterprune.graph.groups import DependencyGraph
from filterprune.graph.tracer import meta_copy, trace
from filterprune.models import create_model
from filterprune.testing import max_difference, randomize_norms

from cases import ALL


def _graph(model, x, meta):
    return DependencyGraph(model, trace(model, x, meta=meta))


def _shape(graph):
    """Everything the rest of the library reads from a graph, in comparable form."""
    return [
        (
            g.name,
            g.size,
            g.frozen,
            tuple(g.reasons),
            [(m.module, m.role, m.positions) for m in g.members],
        )
        for g in graph.groups
    ]


ZOO = {
    "vgg16_bn": dict(width=1 / 16, head="cifar", num_classes=10),
    "resnet50": dict(width=1 / 16, stem="cifar", num_classes=10),
    "mobilenet_v2": dict(width=0.25, small_input=True, num_classes=10),
    "densenet_tiny": dict(num_classes=10, growth_rate=4),
    "unet": dict(base=4, num_classes=2),
}


@pytest.mark.parametrize("name", sorted(ZOO))
def test_meta_graph_equals_real_graph_on_the_zoo(name):
    model = create_model(name, **ZOO[name]).eval()
    x = torch.randn(2, 3, 32, 32)
    meta = _graph(model, x, meta=True)
    assert meta.on_meta
    real = _graph(model, x, meta=False)
    assert not real.on_meta
    assert _shape(meta) == _shape(real)


@pytest.mark.parametrize("name", sorted(ALL))
def test_meta_graph_equals_real_graph_on_hand_written_cases(name):
    model = ALL[name]().eval()
    x = torch.randn(2, 3, 8, 8)
    assert _shape(_graph(model, x, meta=True)) == _shape(_graph(model, x, meta=False))


def test_meta_trace_leaves_the_model_untouched():
    model = create_model("resnet18", width=1 / 16, stem="cifar", num_classes=10).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    _graph(model, torch.randn(2, 3, 32, 32), meta=True)
    assert model.training
    after = model.state_dict()
    assert all(after[k].device.type == "cpu" for k in before)
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN running stats included


def test_meta_copy_keeps_ties_and_shapes():
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
    model[1].weight = model[0].weight
    twin = meta_copy(model)
    assert twin[0].weight is twin[1].weight
    assert twin[0].weight.device.type == "meta"
    assert twin[0].weight.shape == model[0].weight.shape
    assert model[0].weight.device.type == "cpu"


class ValueBranch(nn.Module):
    """Its forward reads a value (``.item()``): the meta copy can't run it, the real trace can."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1)
        self.c = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        y = torch.relu(self.a(x))
        if y.mean().item() > -1.0:  # always true; needs a value all the same
            y = y + self.b(y)
        return self.c(y)


class IndexBuffer(nn.Module):
    """Picks channels with an index tensor: the labels must follow the real index values."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.register_buffer("idx", torch.tensor([6, 1, 3, 0]))
        self.b = nn.Conv2d(4, 4, 1)

    def forward(self, x):
        return self.b(self.a(x)[:, self.idx])


@pytest.mark.parametrize("cls", [ValueBranch, IndexBuffer])
def test_value_dependent_forward_falls_back_to_a_real_trace(cls):
    model = randomize_norms(cls()).eval()
    x = torch.randn(2, 3, 8, 8)
    graph = _graph(model, x, meta=True)
    assert not graph.on_meta  # the meta attempt failed and was replaced
    assert _shape(graph) == _shape(_graph(model, x, meta=False))
    original = copy.deepcopy(model)
    plan = fp.prune(model, x, amount=0.25, criterion="random")
    assert max_difference(original, model, plan, x) < 1e-5


class CpuConstant(nn.Module):
    """Builds a constant on the default device inside forward: it can't meet a meta tensor."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        y = self.a(x)
        return self.b(y + torch.ones(1, 1, 1, 1))


def test_device_bound_constant_falls_back_and_prunes_exactly():
    model = CpuConstant().eval()
    x = torch.randn(2, 3, 8, 8)
    graph = _graph(model, x, meta=True)
    assert not graph.on_meta  # meta + cpu tensor fails: traced for real
    assert _shape(graph) == _shape(_graph(model, x, meta=False))
    original = copy.deepcopy(model)
    plan = fp.prune(model, x, amount=0.5, criterion="l1")
    assert plan.removed_outputs["a"]
    assert max_difference(original, model, plan, x) < 1e-5


class RelativeBias(nn.Module):
    """Swin-style attention bias: a table gathered by an index buffer, added to attention."""

    def __init__(self):
        super().__init__()
        self.qkv = nn.Linear(8, 24)
        self.proj = nn.Linear(8, 8)
        self.table = nn.Parameter(torch.randn(7, 2))
        self.register_buffer("index", torch.randint(0, 7, (4, 4)))

    def forward(self, x):  # (n, 4 tokens, 8)
        n, t, c = x.shape
        q, k, v = self.qkv(x).reshape(n, t, 3, 2, c // 2).permute(2, 0, 3, 1, 4).unbind(0)
        bias = self.table[self.index.view(-1)].view(t, t, -1).permute(2, 0, 1)
        attn = (q @ k.transpose(-2, -1) + bias.unsqueeze(0)).softmax(-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(n, t, c))


def test_index_buffer_into_a_table_stays_on_meta():
    """Gathering from a tensor that carries no channels needs no index values."""
    model = RelativeBias()
    x = torch.randn(1, 4, 8)
    meta, real = _graph(model, x, True), _graph(model, x, False)
    assert meta.on_meta
    assert _shape(meta) == _shape(real)
