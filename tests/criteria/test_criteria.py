"""Every other criterion by name, custom criteria, selection rules, planted channels."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import filterprune as fp
from filterprune.config import Selection


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(2, 6, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(6)
        self.c2 = nn.Conv2d(6, 8, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        x = F.relu(self.bn1(self.c1(x)))
        x = F.relu(self.bn2(self.c2(x)))
        return self.fc(x.mean((2, 3)))


def _data(n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(4, 2, 6, 6, generator=g), torch.randint(0, 3, (4,), generator=g))
        for _ in range(n)
    ]


EX = torch.randn(1, 2, 6, 6)


def test_unknown_criterion_lists_known_names():
    with pytest.raises(ValueError, match="known criteria: .*l1.*taylor"):
        fp.prune(Net(), EX, criterion="nope")


@pytest.mark.parametrize(
    "name",
    [
        "taylor",
        "weight_taylor",
        "bn_gate_taylor",
        "l1",
        "l2",
        "bn_scale",
        "mean_activation",
        "apoz",
        "kmeans",
        "random",
    ],
)
def test_every_criterion_prunes_by_name(name):
    model = Net()
    plan = fp.prune(
        model, EX, amount=0.5, scope="per_group", criterion=name, batches=_data(),
        loss_fn=F.cross_entropy,
    )  # fmt: skip
    assert model.c1.out_channels == 3 and model.c2.out_channels == 4
    assert plan.num_removed == 7


def test_l1_l2_and_bn_scale_exact():
    model = Net()
    s = fp.rank(model, EX, criterion="l1", normalize=False, flops_reg=0)
    assert torch.allclose(s["c1"], model.c1.weight.abs().sum((1, 2, 3)), rtol=1e-5)
    s = fp.rank(model, EX, criterion="l2", normalize=False, flops_reg=0)
    assert torch.allclose(s["c2"], model.c2.weight.pow(2).sum((1, 2, 3)).sqrt(), rtol=1e-5)
    with torch.no_grad():
        model.bn1.weight.copy_(torch.tensor([0.5, -2.0, 1.0, 0.1, 3.0, -0.2]))
    s = fp.rank(model, EX, criterion="bn_scale", normalize=False, flops_reg=0)
    assert torch.allclose(s["c1"], model.bn1.weight.abs())


def test_weight_taylor_and_bn_gate_exact():
    model = Net()
    data = _data(n=2)
    want_w = torch.zeros(6, dtype=torch.float64)
    want_g = torch.zeros(6, dtype=torch.float64)
    model.eval()
    for x, y in data:
        model.zero_grad()
        F.cross_entropy(model(x), y).backward()
        gw = (model.c1.weight * model.c1.weight.grad).sum(
            (1, 2, 3)
        ) + model.c1.bias * model.c1.bias.grad
        want_w += gw.double().pow(2)
        gate = model.bn1.weight * model.bn1.weight.grad + model.bn1.bias * model.bn1.bias.grad
        want_g += gate.double().pow(2)
    model.zero_grad(set_to_none=True)
    s = fp.rank(
        model,
        EX,
        batches=data,
        loss_fn=F.cross_entropy,
        criterion="weight_taylor",
        normalize=False,
        flops_reg=0,
    )
    assert torch.allclose(s["c1"], (want_w / 2).float(), rtol=1e-4)
    s = fp.rank(
        model,
        EX,
        batches=data,
        loss_fn=F.cross_entropy,
        criterion="bn_gate_taylor",
        normalize=False,
        flops_reg=0,
    )
    assert torch.allclose(s["c1"], (want_g / 2).float(), rtol=1e-4)
    assert all(p.grad is None for p in model.parameters())


def test_mean_activation_and_apoz_exact():
    model = Net().eval()
    data = _data(n=2)
    with torch.no_grad():
        zs = torch.cat([F.relu(model.bn1(model.c1(x))) for x, _ in data])
    s = fp.rank(model, EX, batches=data, criterion="mean_activation", normalize=False, flops_reg=0)
    assert torch.allclose(s["c1"], zs.mean((0, 2, 3)), rtol=1e-5)
    s = fp.rank(model, EX, batches=data, criterion="apoz", normalize=False, flops_reg=0)
    assert torch.allclose(s["c1"], 1 - (zs == 0).float().mean((0, 2, 3)), rtol=1e-5)


def test_random_is_seeded():
    def draw(options=None):
        return fp.rank(
            Net(), EX, criterion="random", normalize=False, flops_reg=0, criterion_options=options
        )

    # without a seed option it draws from torch's generator (the loop seeds it per iteration)
    torch.manual_seed(0)
    a = draw()
    torch.manual_seed(0)
    b = draw()
    c = draw()
    assert torch.equal(a["c1"], b["c1"]) and not torch.equal(a["c1"], c["c1"])
    # an explicit seed gives the same draws whatever the generator's state
    assert torch.equal(draw({"seed": 1})["c1"], draw({"seed": 1})["c1"])
    assert not torch.equal(draw({"seed": 1})["c1"], draw({"seed": 2})["c1"])


def test_custom_criteria_both_shapes():
    @fp.criterion_from_scores("neg_index_for_test")
    def neg_index(module, weight):
        return -torch.arange(weight.shape[0], dtype=torch.float32)

    @fp.criterion_from_removals("drop_first_two_for_test")
    def drop_first_two(module, weight, amount):
        return [0, 1]

    # 25 % of 6 channels is 1.5: at least the share, two go; of 8 exactly two
    plan = fp.prune(Net(), EX, amount=0.25, scope="per_group", criterion="neg_index_for_test")
    assert plan.groups["c1"] == [4, 5] and plan.groups["c2"] == [6, 7]
    # 20 % of 6 and of 8 channels, at least the share: two each
    plan = fp.prune(Net(), EX, amount=0.2, scope="per_group", criterion="drop_first_two_for_test")
    assert plan.groups["c1"] == [0, 1] and plan.groups["c2"] == [0, 1]


def test_selection_rules():
    model = Net()
    plan = fp.prune(model, EX, amount=0.5, scope="per_group", criterion="l1", round_to=4)
    assert model.c1.out_channels == 4 and model.c2.out_channels == 4  # 3 -> rounded up to 4
    model = Net()
    plan = fp.prune(model, EX, amount=0.9, scope="per_group", criterion="l1", min_channels=3)
    assert model.c1.out_channels == 3 and model.c2.out_channels == 3
    model = Net()
    plan = fp.prune(model, EX, amount=0.5, criterion="l1", bins=[(6, 0.0)])
    assert model.c1.out_channels == 6 and model.c2.out_channels == 4
    model = Net()
    plan = fp.prune(model, EX, amount=0.5, scope="global", criterion="l1", max_fraction=0.25)
    assert plan.num_removed == 3  # 1 of 6 + 2 of 8 at most
    for bad in (dict(amount=1.0), dict(amount=-0.1), dict(round_to=0), dict(scope="layer")):
        with pytest.raises(ValueError):
            Selection(**bad)


def _train(model, steps=60):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 2, 6, 6, generator=g)
    y = (x[:, 0].mean((1, 2)) > 0).long() + (x[:, 1].mean((1, 2)) > 0).long()
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return [(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)]


def test_taylor_ranks_planted_dead_channels_last_and_kmeans_removes_duplicates_first():
    model = Net()
    data = _train(model)
    dead = [1, 4]
    with torch.no_grad():
        for k in dead:  # always zero after the ReLU
            model.bn1.bias[k] = -1e3
    scores = fp.rank(
        model, EX, batches=data, loss_fn=F.cross_entropy, criterion="taylor", flops_reg=0
    )["c1"]
    assert set(torch.argsort(scores)[:2].tolist()) == set(dead)
    assert torch.all(scores[dead] == 0)

    dup = Net()
    with torch.no_grad():
        dup.c2.weight[5] = dup.c2.weight[2]
        dup.c2.bias[5] = dup.c2.bias[2]
        dup.c2.weight[7] = dup.c2.weight[3]
    plan = fp.prune(dup, EX, amount=0.25, scope="per_group", criterion="kmeans")
    removed = plan.groups["c2"]
    assert len(removed) == 2 and len({2, 5} & set(removed)) == 1 and len({3, 7} & set(removed)) == 1
    assert len(plan.groups["c1"]) == 2  # 25 % of 6 is 1.5: at least the share, two go


def test_kmeans_clusters_into_as_many_filters_as_the_selection_keeps():
    # 30 % of 8 is 2.4: the selection removes three, so the clustering keeps five and every
    # filter it marks for removal (score below 1) is one the plan removes (and no kept one is)
    scores: dict[str, torch.Tensor] = {}
    plan = fp.prune(
        Net(),
        EX,
        amount=0.3,
        scope="per_group",
        criterion="kmeans",
        normalize=False,
        scores_out=scores,
    )
    for name, n, removed in (("c1", 6, 2), ("c2", 8, 3)):
        marked = {i for i in range(n) if scores[name][i] < 1.0}
        assert len(plan.groups[name]) == removed
        assert set(plan.groups[name]) == marked
