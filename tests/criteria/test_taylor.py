"""The Taylor criterion against straightforward hand computations."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import filterprune as fp


class Tiny(nn.Module):
    def __init__(self, bn: bool = False):
        super().__init__()
        self.c1 = nn.Conv2d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4) if bn else nn.Identity()
        self.c2 = nn.Conv2d(4, 3, 3, padding=1)

    def forward(self, x):
        z = F.relu(self.bn(self.c1(x)))
        return self.c2(z).mean((2, 3))


def _batches(n=3, size=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(size, 2, 6, 6, generator=g), torch.randint(0, 3, (size,), generator=g))
        for _ in range(n)
    ]


def _by_hand(model, batches, *, signed=False):
    """Per example |mean_hw(z * dL/dz)|, averaged over all examples of all batches."""
    total, count = torch.zeros(4, dtype=torch.float64), 0
    model.eval()
    for x, y in batches:
        z = F.relu(model.bn(model.c1(x)))
        z.retain_grad()
        loss = F.cross_entropy(model.c2(z).mean((2, 3)), y)
        loss.backward()
        per_example = (z * z.grad).mean((2, 3)).double()  # (N, C)
        total += per_example.sum(0) if signed else per_example.abs().sum(0)
        count += x.shape[0]
        model.zero_grad()
    mean = total / count
    return (mean.abs() if signed else mean).float()


@pytest.mark.parametrize("bn", [False, True])
def test_taylor_matches_hand_computation(bn):
    model = Tiny(bn)
    batches = _batches()
    example = batches[0][0][:1]
    scores = fp.rank(
        model, example, batches=batches, loss_fn=F.cross_entropy, normalize=False, flops_reg=0
    )
    assert torch.allclose(scores["c1"], _by_hand(_copy(model, bn), batches), rtol=1e-5, atol=1e-8)


def _copy(model, bn):
    other = Tiny(bn)
    other.load_state_dict(model.state_dict())
    return other


def test_abs_per_example_before_batch_mean_differs_from_signed_variant():
    model = Tiny()
    batches = _batches(seed=3)
    example = batches[0][0][:1]
    default = fp.rank(
        model, example, batches=batches, loss_fn=F.cross_entropy, normalize=False, flops_reg=0
    )["c1"]
    signed = fp.rank(
        model,
        example,
        batches=batches,
        loss_fn=F.cross_entropy,
        normalize=False,
        flops_reg=0,
        criterion_options={"signed": True},
    )["c1"]
    assert torch.allclose(signed, _by_hand(_copy(model, False), batches, signed=True), rtol=1e-5)
    assert torch.allclose(default, _by_hand(_copy(model, False), batches), rtol=1e-5)
    assert (default >= signed - 1e-7).all() and not torch.allclose(default, signed)


def test_accumulates_over_every_batch_not_only_the_last():
    model = Tiny()
    batches = _batches(n=4, seed=5)
    example = batches[0][0][:1]
    all_batches = fp.rank(
        model, example, batches=batches, loss_fn=F.cross_entropy, normalize=False, flops_reg=0
    )["c1"]
    last_only = fp.rank(
        model, example, batches=batches[-1:], loss_fn=F.cross_entropy, normalize=False, flops_reg=0
    )["c1"]
    assert not torch.allclose(all_batches, last_only)
    assert torch.allclose(all_batches, _by_hand(_copy(model, False), batches), rtol=1e-5)


def test_normalization_is_per_group_l2():
    model = Tiny()
    batches = _batches()
    example = batches[0][0][:1]
    raw = fp.rank(
        model, example, batches=batches, loss_fn=F.cross_entropy, normalize=False, flops_reg=0
    )["c1"]
    normed = fp.rank(
        model, example, batches=batches, loss_fn=F.cross_entropy, normalize=True, flops_reg=0
    )["c1"]
    assert torch.allclose(normed, raw / raw.pow(2).sum().sqrt(), rtol=1e-5)
    assert torch.isclose(normed.pow(2).sum(), torch.tensor(1.0))


def test_pre_and_post_relu_scores_agree():
    model = Tiny(bn=True)
    batches = _batches(seed=7)
    example = batches[0][0][:1]
    post = fp.rank(
        model, example, batches=batches, loss_fn=F.cross_entropy, normalize=False, flops_reg=0
    )["c1"]
    pre = fp.rank(
        model,
        example,
        batches=batches,
        loss_fn=F.cross_entropy,
        normalize=False,
        flops_reg=0,
        criterion_options={"where": "module"},
    )["c1"]
    assert torch.allclose(pre, post, rtol=1e-4, atol=1e-9)


def test_ema_accumulation():
    model = Tiny()
    batches = _batches(n=3, seed=11)
    example = batches[0][0][:1]
    ema = fp.rank(
        model,
        example,
        batches=batches,
        loss_fn=F.cross_entropy,
        normalize=False,
        flops_reg=0,
        criterion_options={"accumulate": "ema", "momentum": 0.5},
    )["c1"]
    per_batch = [_by_hand(_copy(model, False), [b]) for b in batches]
    want = per_batch[0]
    for b in per_batch[1:]:
        want = 0.5 * want + 0.5 * b
    assert torch.allclose(ema, want, rtol=1e-5)


def test_ranking_leaves_grad_mode_and_hooks_as_they_were():
    model = Tiny(bn=True)
    model.train()
    for p in model.parameters():
        p.grad = torch.full_like(p, 7.0)
    batches = _batches()
    fp.rank(model, batches[0][0][:1], batches=batches, loss_fn=F.cross_entropy)
    assert model.training
    assert all(torch.all(p.grad == 7.0) for p in model.parameters())
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())

    def bad_loss(out, y):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fp.rank(model, batches[0][0][:1], batches=batches, loss_fn=bad_loss)
    assert model.training
    assert all(not m._forward_hooks for m in model.modules())


def test_step_fn_and_other_losses():
    model = Tiny()
    batches = _batches()

    def step(m, batch):
        x, y = batch
        out = m(x)
        return F.binary_cross_entropy_with_logits(out, F.one_hot(y, 3).float())

    scores = fp.rank(model, batches[0][0][:1], batches=batches, step_fn=step)
    assert scores["c1"].shape == (4,) and torch.isfinite(scores["c1"]).all()


def test_flops_regularization_prunes_the_expensive_layer_first():
    class TwoLayers(nn.Module):
        def __init__(self):
            super().__init__()
            self.cheap = nn.Conv2d(3, 8, 1)  # 1x1 at 4x4 after pooling
            self.costly = nn.Conv2d(3, 8, 3, padding=1)  # 3x3 at 16x16
            self.head = nn.Linear(16, 2)

        def forward(self, x):
            a = self.cheap(F.avg_pool2d(x, 4)).mean((2, 3))
            b = self.costly(x).mean((2, 3))
            return self.head(torch.cat([a, b], 1))

    @fp.criterion_from_scores("all_equal_for_test")
    def all_equal(module, weight):
        return torch.ones(weight.shape[0])

    x = torch.randn(1, 3, 16, 16)
    model = TwoLayers()
    plan = fp.prune(
        model, x, amount=0.25, scope="global", criterion="all_equal_for_test", flops_reg=1e-3
    )
    assert plan.groups == {"costly": [0, 1, 2, 3]}
    # the U-Net seed's sign (adding the cost) would protect the expensive layer instead
    scores = fp.rank(TwoLayers(), x, criterion="all_equal_for_test", flops_reg=1e-3)
    assert scores["costly"].max() < scores["cheap"].min()


def test_ranking_frees_feature_maps_without_the_cycle_collector(monkeypatch):
    """Each batch's observed maps must die by reference counting, not wait for the collector."""
    import gc
    import weakref

    from filterprune.criteria.observe import FeatureObserver

    model = Tiny()
    batches = _batches()
    x = batches[0][0][:1]
    graph = fp.analyze(model, x)
    seen = []
    emit = FeatureObserver._emit

    def spy(self, anchor, z):
        seen.append(weakref.ref(z))
        emit(self, anchor, z)

    monkeypatch.setattr(FeatureObserver, "_emit", spy)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        fp.rank(model, x, batches=batches, loss_fn=F.cross_entropy, criterion="taylor", graph=graph)
        alive = sum(ref() is not None for ref in seen)
    finally:
        if was_enabled:
            gc.enable()
    assert len(seen) == len(batches)
    assert alive == 0


class InPlaceInput(Tiny):
    def forward(self, x):
        x.sub_(0.5)  # normalises its input in place
        return super().forward(x)


def test_ranking_skips_weight_gradients_but_scores_the_same():
    """Backward towards the inputs gives the feature-map gradients Taylor needs, and no more."""
    torch.manual_seed(0)
    model = Tiny(bn=True)
    batches = _batches()
    x = batches[0][0][:1]
    graph = fp.analyze(model, x)
    calls = []
    handle = model.c1.weight.register_hook(lambda g: calls.append(g))
    try:
        scores = fp.rank(
            model, x, batches=batches, loss_fn=F.cross_entropy, criterion="taylor", graph=graph
        )
    finally:
        handle.remove()
    assert calls == []  # no gradient was taken for a weight
    # the same scores with gradients taken for the parameters, through a user step function
    twin = fp.rank(
        model,
        x,
        batches=batches,
        criterion="taylor",
        graph=graph,
        step_fn=lambda m, b: F.cross_entropy(m(b[0]), b[1]),
    )
    for name in scores:
        torch.testing.assert_close(scores[name], twin[name])
    assert all(p.grad is None for p in model.parameters())


def test_ranking_a_model_that_modifies_its_input_in_place():
    model = InPlaceInput()
    batches = _batches()
    x = batches[0][0][:1].clone()
    graph = fp.analyze(model, x)
    scores = fp.rank(
        model, x, batches=batches, loss_fn=F.cross_entropy, criterion="taylor", graph=graph
    )
    assert all(torch.isfinite(v).all() and (v >= 0).all() for v in scores.values())
