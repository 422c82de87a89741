"""The probe finds every culprit of a pruned copy in one round, and what it cannot verify freezes
only the groups that reach it."""

import torch
from torch import nn

import filterprune as fp
import filterprune.probe as probe
from filterprune.graph.groups import DependencyGraph
from filterprune.graph.tracer import trace
from filterprune.testing import assert_equivalent


class FourBakedViews(nn.Module):
    """Four branches, each baking its width into a view on its own source line; one free."""

    def __init__(self):
        super().__init__()
        self.a = nn.ModuleList(nn.Conv2d(3, 8, 3, padding=1) for _ in range(4))
        self.free = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Conv2d(8, 1, 1)

    def forward(self, x):
        n = x.shape[0]
        y0 = self.a[0](x).view(n, 8, -1).sum(1)
        y1 = self.a[1](x).view(n, 8, -1).sum(1)
        y2 = self.a[2](x).reshape(n, 8, -1).sum(1)
        y3 = self.a[3](x).view(n, 8, -1).sum(1)
        z = self.head(torch.relu(self.free(x))).flatten(1)
        return (y0 + y1) * (y2 - y3) + z


def _input():
    return torch.randn(2, 3, 8, 8)


def _graph(model):
    return DependencyGraph(model, trace(model, _input()))


def test_every_culprit_is_found_in_one_round():
    model = FourBakedViews()
    graph = _graph(model)
    rounds = probe.verify(model, _input(), graph, ())
    assert rounds == 2  # one round finds the four views, the next one agrees
    frozen = {g.name for g in graph.frozen}
    assert {"a.0", "a.1", "a.2", "a.3"} <= frozen
    assert "free" in {g.name for g in graph.prunable}
    reasons = " ".join(r for g in graph.frozen for r in g.reasons)
    assert "op 'view'" in reasons and "op 'reshape'" in reasons
    assert "test_probe_rounds.py:" in reasons  # the model's source line


def test_unconverged_probe_freezes_only_what_reaches_the_op(monkeypatch):
    monkeypatch.setattr(probe, "MAX_ROUNDS", 0)  # straight to the fallback
    model = FourBakedViews()
    graph = _graph(model)
    probe.verify(model, _input(), graph, ())
    assert "free" in {g.name for g in graph.prunable}
    kept = [r for g in graph.frozen for r in g.reasons if "after 0 rounds" in r]
    assert kept and all("at " in r and "test_probe_rounds.py:" in r for r in kept)
    assert not any("every group" in r for g in graph.frozen for r in g.reasons)


def test_last_resort_still_keeps_everything(monkeypatch):
    monkeypatch.setattr(probe, "MAX_ROUNDS", 0)
    monkeypatch.setattr(probe, "FALLBACK_ROUNDS", 0)
    model = FourBakedViews()
    graph = _graph(model)
    probe.verify(model, _input(), graph, ())
    assert not graph.prunable
    assert any("could not verify" in r for g in graph.frozen for r in g.reasons)


def test_pruned_model_stays_exact():
    model = FourBakedViews()
    original = FourBakedViews()
    original.load_state_dict(model.state_dict())
    x = _input()
    plan = fp.prune(model, x, amount=0.5, criterion="l1", scope="per_group", layer_types=())
    assert plan.removed_outputs.get("free")
    assert_equivalent(original, model, plan, x)
