"""Every entry point starts from the one default recipe (``filterprune.config.recipe``).

The CLI, ``PruneConfig()``, ``fp.prune``, ``fp.rank`` and the Lightning callback are each asked
what they would do with nothing set, and must resolve to the same settings; the documented
departures (no data: ``l1``; a per-group scope: no cost term) are shown to be the only ones.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import filterprune as fp
import filterprune.api
from filterprune.config import recipe

SETTINGS = ("criterion", "normalize", "flops_reg", "cost")
LIMITS = ("amount", "scope", "max_fraction", "layer_types", "min_channels", "round_to")


def _resolved(selection, ranking) -> dict:
    return {
        **{k: getattr(ranking, k) for k in SETTINGS},
        **{k: getattr(selection, k) for k in LIMITS},
    }


def _recipe() -> dict:
    expected = {k: recipe.RECIPE[k] for k in ("criterion", "normalize", "flops_reg", "cost")}
    return {
        **expected,
        "amount": recipe.AMOUNT,
        "scope": recipe.SCOPE,
        "max_fraction": None,
        "layer_types": recipe.LAYER_TYPES,
        "min_channels": 1,
        "round_to": 1,
    }


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc(F.relu(self.c2(F.relu(self.c1(x)))).mean((2, 3)))


X = torch.randn(1, 3, 8, 8)
BATCHES = [(torch.randn(4, 3, 8, 8), torch.randint(0, 3, (4,))) for _ in range(2)]


@pytest.fixture
def seen(monkeypatch):
    """What ``fp.prune`` and ``fp.rank`` hand the criterion: the resolved objects."""
    found: dict = {}
    real_rank = filterprune.api.rank

    def spy_rank(model, example, *, ranking=None, selection=None, **kw):
        scores = real_rank(model, example, ranking=ranking, selection=selection, **kw)
        found["ranking"], found["selection"] = ranking, selection
        return scores

    monkeypatch.setattr(filterprune.api, "rank", spy_rank)
    real_merged = fp.Ranking.merged.__func__

    def spy_merged(cls, given, **flat):
        found["rank_ranking"] = real_merged(cls, given, **flat)
        return found["rank_ranking"]

    monkeypatch.setattr(fp.Ranking, "merged", classmethod(spy_merged))
    return found


def test_the_objects_and_the_config_default_to_the_recipe():
    assert _resolved(fp.Selection(), fp.Ranking()) == _recipe()
    config = fp.PruneConfig()
    assert _resolved(config.removal, config.ranking) == _recipe()


def test_the_cli_defaults_to_the_recipe(tmp_path):
    from filterprune.cli.main import build_parser
    from filterprune.cli.prune import build_config

    args = build_parser().parse_args(["prune", "--load", str(tmp_path)])
    config = build_config(args, None)
    assert _resolved(config.removal, config.ranking) == _recipe()
    assert config == fp.PruneConfig()  # nothing else differs either


def test_prune_with_data_uses_the_recipe(seen):
    fp.prune(Net(), X, batches=BATCHES, loss_fn=F.cross_entropy)
    assert _resolved(seen["selection"], seen["ranking"]) == _recipe()


def test_prune_without_data_departs_to_l1_only(seen):
    fp.prune(Net(), X)
    assert _resolved(seen["selection"], seen["ranking"]) == {**_recipe(), "criterion": "l1"}


def test_rank_uses_the_recipe_ranking(seen):
    fp.rank(Net(), X, batches=BATCHES, loss_fn=F.cross_entropy)
    got = seen["rank_ranking"]
    assert {k: getattr(got, k) for k in SETTINGS} == {k: _recipe()[k] for k in SETTINGS}
    fp.rank(Net(), X)
    assert seen["rank_ranking"].criterion == "l1"


def test_the_lightning_callback_defaults_to_the_recipe():
    pytest.importorskip("lightning")
    from filterprune.integrations.lightning import FilterPruning

    callback = FilterPruning()
    assert _resolved(callback.selection, callback.ranking) == _recipe()


def test_a_per_group_scope_drops_the_default_cost_term_everywhere(tmp_path, seen):
    from filterprune.cli.main import build_parser
    from filterprune.cli.prune import build_config

    args = build_parser().parse_args(["prune", "--load", str(tmp_path), "--scope", "per_group"])
    cli = build_config(args, None)
    fp.prune(Net(), X, scope="per_group", batches=BATCHES, loss_fn=F.cross_entropy)
    python = fp.PruneConfig(scope="per_group")
    assert cli.flops_reg == python.flops_reg == seen["ranking"].flops_reg == 0.0
    with pytest.raises(fp.ConfigError, match="a cost term reorders"):
        fp.prune(Net(), X, scope="per_group", flops_reg=0.5)
    with pytest.raises(fp.ConfigError, match="a cost term reorders"):
        fp.PruneConfig(scope="per_group", flops_reg=0.5)


def test_the_conv_alias_selects_every_convolution_and_yields_to_include():
    class Odd(nn.Conv2d):  # a subclass, as timm's Conv2dSame
        pass

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = Odd(3, 8, 3, padding=1)
            self.fc1 = nn.Linear(8, 16)
            self.fc2 = nn.Linear(16, 3)

        def forward(self, x):
            return self.fc2(F.relu(self.fc1(self.a(x).mean((2, 3)))))

    plan = fp.prune(M(), X, selection=fp.Selection(layer_types=("conv",), amount=0.3))
    assert set(plan.removed_outputs) == {"a"}
    plan = fp.prune(M(), X, amount=0.3, selection=fp.Selection(include=("fc*",), amount=0.3))
    assert set(plan.removed_outputs) == {"fc1"}  # include replaces the recipe's "conv"


def test_a_model_without_convolutions_prunes_its_layers():
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(192, 32), nn.ReLU(), nn.Linear(32, 3))
    plan = fp.prune(mlp, X, amount=0.2)
    assert set(plan.removed_outputs) == {"1"}  # the hidden Linear; the output layer stays
