"""Channel costs for the regularisation term: exact per-channel values for every cost kind."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import filterprune as fp
from filterprune.criteria.regularize import channel_costs
from filterprune.loop import PruneConfig
from filterprune.measure import costs as layer_costs


class _Clock:
    """A fake ``time`` module: ``perf_counter`` only moves when a layer says so."""

    def __init__(self) -> None:
        self.t = 0.0

    def perf_counter(self) -> float:
        return self.t


class _Timed:
    """A layer mixin that advances the fake clock by ``delay`` units on every forward."""

    def __init__(self, *args, clock: _Clock, delay: float, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.clock, self.delay = clock, delay

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.clock.t += self.delay
        return super().forward(x)


class _TimedConv(_Timed, nn.Conv2d):
    pass


class _TimedLinear(_Timed, nn.Linear):
    pass


class _Net(nn.Module):
    """conv a (3->4, 3x3, 8x8 map) -> conv b (4->6, 1x1) -> global mean -> head (6->2)."""

    def __init__(self, clock: _Clock | None = None) -> None:
        super().__init__()
        clock = clock or _Clock()
        self.a = _TimedConv(3, 4, 3, padding=1, clock=clock, delay=3.0)
        self.b = _TimedConv(4, 6, 1, clock=clock, delay=1.0)
        self.head = _TimedLinear(6, 2, clock=clock, delay=0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.b(self.a(x)).mean((2, 3)))


X = torch.randn(1, 3, 8, 8)


def _costs(model: nn.Module, cost: str) -> dict[str, torch.Tensor]:
    return channel_costs(fp.analyze(model, X), X, cost)


def _expect(costs: dict[str, torch.Tensor], a: float, b: float) -> None:
    """Group ``a`` and ``b`` costs, every channel alike, normalised by the larger one."""
    top = max(a, b)
    assert set(costs) == {"a", "b"}
    torch.testing.assert_close(costs["a"], torch.full((4,), a / top))
    torch.testing.assert_close(costs["b"], torch.full((6,), b / top))


def test_flops_cost_is_macs_saved_per_channel():
    # MACs: a = 8*8 * 4*3*9 = 6912, b = 8*8 * 6*4 = 1536, head = 6*2 = 12.
    # A channel of group a saves a's MACs / 4 outputs and b's MACs / 4 inputs.
    _expect(_costs(_Net(), "flops"), 6912 / 4 + 1536 / 4, 1536 / 6 + 12 / 6)


def test_params_cost_is_parameters_saved_per_channel():
    # params (with bias): a = 4*3*9 + 4 = 112, b = 6*4 + 6 = 30, head = 6*2 + 2 = 14
    _expect(_costs(_Net(), "params"), 112 / 4 + 30 / 4, 30 / 6 + 14 / 6)


def test_memory_cost_counts_outputs_only():
    # output elements at batch 1: a = 4*64, b = 6*64; a consumer's input side saves nothing
    _expect(_costs(_Net(), "memory"), 4 * 64 / 4, 6 * 64 / 6)


def test_latency_cost_shares_each_layers_measured_time_among_its_channels(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(layer_costs, "time", clock)
    model = _Net(clock).train()
    costs = _costs(model, "latency")
    # a takes 3 units, b 1 unit, the head 0: group a = 3/4 + 1/4, group b = 1/6 + 0/6
    _expect(costs, 3 / 4 + 1 / 4, 1 / 6)
    assert model.training, "the training flag must be restored"
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks, "timing hooks must be removed"


def test_latency_cost_decides_the_global_order(monkeypatch):
    """At equal scores the channels whose removal saves the most time go first."""
    clock = _Clock()
    monkeypatch.setattr(layer_costs, "time", clock)

    @fp.criterion_from_scores("equal_for_cost_test")
    def equal(module, weight):
        return torch.ones(weight.shape[0])

    def pruned_groups(cost: str) -> dict[str, list[int]]:
        model = _Net(clock)
        # only the head takes time: group b (b's outputs = the head's inputs) is the costly one,
        # although group a saves 5.5x the MACs per channel
        model.a.delay, model.b.delay, model.head.delay = 0.0, 0.0, 12.0
        plan = fp.prune(
            model, X, amount=0.3, scope="global", criterion="equal_for_cost_test",
            flops_reg=1.0, cost=cost, normalize=False,
        )  # fmt: skip
        return plan.groups

    assert pruned_groups("latency") == {"b": [0, 1, 2]}
    assert pruned_groups("flops") == {"a": [0, 1, 2]}


def test_latency_cost_on_a_real_clock_is_finite_and_normalised():
    costs = _costs(_Net(), "latency")
    for c in costs.values():
        assert torch.isfinite(c).all() and (c >= 0).all() and (c <= 1).all()
    assert max(float(c.max()) for c in costs.values()) == 1.0


def test_unknown_cost_is_named_with_the_choices():
    with pytest.raises(ValueError, match="flops, params, memory, latency.*'time'"):
        _costs(_Net(), "time")
    assert PruneConfig(cost="latency").cost == "latency"


def test_latency_cost_sums_the_calls_of_a_layer_used_twice(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(layer_costs, "time", clock)

    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = _TimedConv(3, 4, 3, padding=1, clock=clock, delay=1.0)
            self.c = _TimedConv(4, 4, 1, clock=clock, delay=2.0)  # called twice: 4 units a pass
            self.b = _TimedConv(4, 6, 1, clock=clock, delay=1.0)
            self.head = _TimedLinear(6, 2, clock=clock, delay=0.0)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.b(self.c(self.c(self.a(x)))).mean((2, 3)))

    costs = channel_costs(fp.analyze(Twice(), X), X, "latency")
    (tied,) = [k for k in costs if k != "b"]  # a's outputs, c's inputs and outputs, b's inputs
    # tied channel: a 1/4 + c in 4/4 + c out 4/4 + b in 1/4 = 2.5; b's channel: 1/6 + 0
    torch.testing.assert_close(costs[tied], torch.ones(4))
    torch.testing.assert_close(costs["b"], torch.full((6,), (1 / 6) / 2.5))
