"""What real use does to a model during pruning: interruptions, weight ties, per-module flags.

* Surgery is all-or-nothing: an exception or Ctrl-C at any point of ``apply_plan``/``fp.prune``
  leaves the model fully pruned or exactly unchanged, never half-sliced.
* Layers sharing one ``Parameter`` keep sharing it, and lose the same channels (exactly, by the
  oracle), whether the tensor is indexed the same way (two convs) or transposed (a conv and the
  transposed conv tied to it in an autoencoder).
* Every module's train/eval flag comes back as it was after ranking, pruning, tracing, counting
  and checking, including a BatchNorm a user keeps in eval inside a training model.
"""

from __future__ import annotations

import copy
import os
import signal

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import filterprune as fp
from filterprune.surgery import apply as surgery
from filterprune.testing import (
    assert_equivalent,
    calibrate_batchnorm,
    max_difference,
    output_change,
    randomize_norms,
)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.c2, self.b2 = nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.c3, self.b3 = nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.b1(self.c1(x)))
        x = F.relu(self.b2(self.c2(x)))
        x = F.relu(self.b3(self.c3(x)))
        return self.fc(x.mean((2, 3)))


class TiedConvs(nn.Module):
    """``b`` reuses ``a``'s weight (and bias) under another name."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.a = nn.Conv2d(8, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1)
        self.b.weight, self.b.bias = self.a.weight, self.a.bias
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.tanh(self.stem(x))
        x = torch.tanh(self.a(x))
        x = torch.tanh(self.b(x)) * 1.5 + x
        return self.head(x.mean((2, 3)))


class TiedAutoencoder(nn.Module):
    """A decoder tied to its encoder: the transposed conv holds the conv's weight."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 12, 3, padding=1)
        self.enc = nn.Conv2d(12, 6, 3, stride=2, padding=1)
        self.dec = nn.ConvTranspose2d(6, 12, 4, stride=2, padding=1)
        self.enc.weight = nn.Parameter(torch.randn(6, 12, 4, 4) * 0.2)
        self.enc.kernel_size, self.enc.padding = (4, 4), (1, 1)
        self.dec.weight = self.enc.weight
        self.out = nn.Conv2d(12, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.stem(x))
        return self.out(torch.tanh(self.dec(torch.tanh(self.enc(h)))) + h)


#: Every group loses its share, every layer kind: the checks reach every layer.
EVERY_GROUP = {"scope": "per_group", "layer_types": ()}


def _strong(model: nn.Module, x: torch.Tensor) -> nn.Module:
    randomize_norms(model, statistics=False)
    calibrate_batchnorm(model, [torch.randn_like(x) for _ in range(3)])
    assert output_change(model, x, torch.randn_like(x)) > 0.05  # the output depends on x
    return model


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _assert_unchanged(model: nn.Module, before: dict, x: torch.Tensor, out: torch.Tensor) -> None:
    after = model.state_dict()
    assert after.keys() == before.keys()
    for key, value in before.items():
        assert after[key].shape == value.shape and torch.equal(after[key], value), key
    with torch.no_grad():
        assert torch.equal(model(x), out)


# ----- all-or-nothing surgery ------------------------------------------------------------------


@pytest.mark.parametrize("at", [1, 2, 5, 9])
@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_an_error_in_the_middle_of_surgery_leaves_the_model_unchanged(monkeypatch, at, error):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 8)
    model = _strong(Net(), x)
    before = _state(model)
    with torch.no_grad():
        out = model(x)
    real, calls = surgery._assign, []

    def failing(module, name, new):
        calls.append(name)
        if len(calls) == at:
            raise error("interrupted")
        real(module, name, new)

    monkeypatch.setattr(surgery, "_assign", failing)
    with pytest.raises(error):
        fp.prune(model, x, amount=0.25, criterion="l1", **EVERY_GROUP)
    assert len(calls) == at  # it did fail part-way through the swap
    _assert_unchanged(model, before, x, out)
    # and the same model prunes fine afterwards
    monkeypatch.setattr(surgery, "_assign", real)
    original = copy.deepcopy(model)
    plan = fp.prune(model, x, amount=0.25, criterion="l1", **EVERY_GROUP)
    assert_equivalent(original, model, plan, x)


def test_an_error_while_new_tensors_are_computed_leaves_the_model_unchanged(monkeypatch):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 8)
    model = _strong(Net(), x)
    before = _state(model)
    with torch.no_grad():
        out = model(x)
    real, calls = surgery._gather, []

    def failing(tensor, keep):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(tensor, keep)

    monkeypatch.setattr(surgery, "_gather", failing)
    with pytest.raises(KeyboardInterrupt):
        fp.prune(model, x, amount=0.25, criterion="l1", **EVERY_GROUP)
    _assert_unchanged(model, before, x, out)


def test_ctrl_c_during_the_swap_is_raised_after_it_with_the_model_whole(monkeypatch):
    """A real SIGINT arriving while tensors are swapped in waits until the model is whole."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 8)
    model = _strong(Net(), x)
    original = copy.deepcopy(model)
    real, calls = surgery._assign, []

    def assign(module, name, new):
        calls.append(name)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)
        real(module, name, new)

    graph = fp.analyze(model, x)  # (its probe runs surgery on a copy: patch after it)
    scores = fp.rank(model, x, criterion="l1", graph=graph)
    plan = graph.plan({g: [0, 1] for g in scores if not graph.group(g).frozen})
    monkeypatch.setattr(surgery, "_assign", assign)
    with pytest.raises(KeyboardInterrupt):
        fp.apply_plan(model, plan)
    assert len(calls) > 2  # the swap went on after the signal
    assert_equivalent(original, model, plan, x)  # fully pruned, and exact
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# ----- weight tying -----------------------------------------------------------------------------


@pytest.mark.parametrize("criterion", ["l1", "taylor"])
def test_tied_convs_stay_tied_and_lose_the_same_channels(criterion):
    torch.manual_seed(0)
    x = torch.randn(4, 3, 8, 8)
    model = TiedConvs()
    assert output_change(model, x, torch.randn_like(x)) > 0.05
    original = copy.deepcopy(model)
    graph = fp.analyze(model, x)
    tied = [g for g in graph.groups if {"a", "b"} <= set(g.producers)]
    assert tied and not tied[0].frozen  # one prunable group holds both layers
    extra = {}
    if criterion == "taylor":
        data = [(torch.randn(4, 3, 8, 8), torch.randint(0, 4, (4,))) for _ in range(2)]
        extra = {"batches": data, "loss_fn": F.cross_entropy}
    plan = fp.prune(model, x, amount=0.25, criterion=criterion, **EVERY_GROUP, **extra)
    assert plan.removed_outputs.get("a") and plan.removed_outputs["a"] == plan.removed_outputs["b"]
    assert model.a.weight is model.b.weight and model.a.bias is model.b.bias
    assert model.a.weight.shape[0] < 8
    assert_equivalent(original, model, plan, x)
    assert len(list(model.parameters())) == len(list(original.parameters()))


def test_a_tied_autoencoder_stays_tied_across_transposed_axes():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 8)
    model = TiedAutoencoder()
    assert output_change(model, x, torch.randn_like(x)) > 0.05
    original = copy.deepcopy(model)
    plan = fp.prune(model, x, amount=0.3, criterion="l1", **EVERY_GROUP)
    assert plan.removed_outputs.get("enc"), plan.removed_outputs
    assert model.enc.weight is model.dec.weight
    assert model.enc.out_channels == model.dec.in_channels < 6
    assert model.enc.in_channels == model.dec.out_channels
    assert_equivalent(original, model, plan, x)


def test_a_plan_cutting_a_shared_tensor_two_ways_is_refused_untouched():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 8)
    model = TiedConvs()
    before = _state(model)
    with torch.no_grad():
        out = model(x)
    bad = fp.Plan(removed_outputs={"a": [0], "b": [1]}, removed_inputs={"b": [0], "head": [1]})
    with pytest.raises(fp.PlanError, match="share one tensor"):
        fp.apply_plan(model, bad)
    _assert_unchanged(model, before, x, out)


# ----- train/eval flags -------------------------------------------------------------------------


def _flags(model: nn.Module) -> dict[str, bool]:
    return {name: m.training for name, m in model.named_modules()}


def test_every_modules_own_train_flag_survives_ranking_pruning_and_checking():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 8, 8)
    model = Net().train()
    model.b2.eval()  # frozen statistics inside a training model
    expected = _flags(model)
    data = [(torch.randn(4, 3, 8, 8), torch.randint(0, 5, (4,))) for _ in range(2)]
    for train_mode in (True, False):
        fp.rank(model, x, criterion="taylor", batches=data, loss_fn=F.cross_entropy,
                train_mode=train_mode)  # fmt: skip
        assert _flags(model) == expected, train_mode
    fp.rank(model, x, criterion="weight_taylor", batches=data, loss_fn=F.cross_entropy)
    assert _flags(model) == expected
    fp.inspect(model, x)
    fp.count(model, x)
    assert _flags(model) == expected
    original = copy.deepcopy(model)
    plan = fp.prune(
        model, x, amount=0.25, criterion="taylor", batches=data, loss_fn=F.cross_entropy
    )
    assert _flags(model) == expected
    max_difference(original, model, plan, x)
    assert _flags(model) == expected
