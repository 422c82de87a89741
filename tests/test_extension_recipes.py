"""The "Where to add ..." recipes of docs/design.md, followed from outside the package.

A toy criterion (``filterprune.register_criterion``), a toy layer kind (a module with a
per-channel parameter, ``filterprune.register_layer``) and a toy op rule
(``filterprune.graph.rules.rule``) prune a tiny model exactly: the pruned model computes what
the original computes with the removed channels masked (``filterprune.testing``).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from torch import nn

import filterprune as fp
from filterprune.graph import PerChannelSpec
from filterprune.graph.rules import RULES, TraceState, rule
from filterprune.testing import assert_equivalent, randomize_norms


class ChannelAffine(nn.Module):
    """``y = x * gain + shift`` with one gain and one shift per channel (a toy layer kind)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.gain = nn.Parameter(torch.ones(channels))
        self.shift = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gain.view(1, -1, 1, 1) + self.shift.view(1, -1, 1, 1)


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.affine = ChannelAffine(8)
        self.b = nn.Conv2d(8, 6, 3, padding=1)
        self.head = nn.Linear(6, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.sinh(self.affine(self.bn(self.a(x))))  # sinh: the toy op rule
        return self.head(torch.relu(self.b(y)).mean((2, 3)))


class RandomScores:
    """A toy criterion: a seeded random score per channel of every prunable group."""

    name = "recipe_random_for_test"
    needs_data = False
    calls = 0

    def __init__(self, seed: int = 0, **options: Any) -> None:
        self.seed = seed

    def __call__(self, graph: Any, **context: Any) -> dict[str, torch.Tensor]:
        type(self).calls += 1
        gen = torch.Generator().manual_seed(self.seed)
        return {g.name: torch.rand(g.size, generator=gen) for g in graph.prunable}


def _same_labels(tr: TraceState, name: str, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
    """An element-wise op of one tensor: the output's channels are the input's."""
    tr.set_label(out, tr.label(args[0]))


@pytest.fixture
def recipes():
    from filterprune.criteria.registry import _CRITERIA
    from filterprune.graph.specs import _REGISTRY

    criteria = dict(_CRITERIA._items)
    fp.register_criterion(RandomScores.name)(RandomScores)
    fp.register_layer(ChannelAffine, PerChannelSpec(["gain", "shift"], count_attr="channels"))
    rule("sinh")(_same_labels)
    try:
        yield
    finally:
        RULES.remove("sinh")
        _REGISTRY.remove(ChannelAffine)
        _CRITERIA._items.clear()
        _CRITERIA._items.update(criteria)


def _model() -> Tiny:
    torch.manual_seed(0)
    model = Tiny()
    randomize_norms(model)
    with torch.no_grad():  # a layer kind the helper does not know: random values by hand
        model.affine.gain.uniform_(0.5, 1.5)
        model.affine.shift.uniform_(-0.5, 0.5)
    return model.eval()


def test_without_the_recipes_the_custom_layer_and_op_keep_their_channels():
    graph = fp.analyze(_model(), torch.randn(2, 3, 8, 8))
    assert graph.group("a").frozen


def test_a_toy_criterion_layer_kind_and_op_rule_prune_a_tiny_model_exactly(recipes):
    x = torch.randn(2, 3, 8, 8)
    graph = fp.analyze(_model(), x)
    assert not graph.group("a").frozen
    assert {m.module for m in graph.group("a").members} >= {"a", "bn", "affine", "b"}

    model = _model()
    original = copy.deepcopy(model)
    calls = RandomScores.calls
    plan = fp.prune(model, x, amount=0.5, criterion=RandomScores.name)
    assert RandomScores.calls > calls
    removed = plan.removed_outputs["a"]
    assert removed and plan.removed_outputs["affine"] == removed
    kept = 8 - len(removed)
    assert model.a.out_channels == model.affine.channels == kept
    assert model.affine.gain.shape == model.affine.shift.shape == (kept,)
    assert model.b.in_channels == kept
    assert_equivalent(original, model, plan, x, atol=1e-5)
