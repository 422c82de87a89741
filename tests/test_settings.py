"""Selection and Ranking: they check themselves, round-trip JSON, and prune() takes them."""

from __future__ import annotations

import pytest
import torch

import filterprune as fp
from filterprune.config import ConfigError
from tiny_models import TwoConvNet

X = torch.randn(1, 3, 8, 8)


def _model() -> TwoConvNet:
    torch.manual_seed(0)
    return TwoConvNet(num_classes=3, width=8, second=12)


@pytest.mark.parametrize(
    "settings",
    [
        fp.Selection(),
        fp.Selection(amount=0.25, scope="per_group", round_to=4, bins=((8, 0.5),), exclude=("fc",)),
        fp.Ranking(),
        fp.Ranking(criterion="taylor", options={"signed": True}, flops_reg=1e-3, batches=4),
    ],
)
def test_settings_round_trip_through_json(settings):
    again = type(settings).from_json(settings.to_json())
    assert again == settings
    assert again.to_dict() == settings.to_dict()


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: fp.Selection(amount=1.0), r"Selection\.amount: need a fraction in \[0, 1\)"),
        (lambda: fp.Selection(scope="layer"), r"Selection\.scope: need one of"),
        (lambda: fp.Selection(round_to=0), r"Selection\.round_to: need an int >= 1, got 0"),
        (lambda: fp.Selection(bins=((0, 0.5),)), r"Selection\.bins: need \(max_width >= 1"),
        (lambda: fp.Selection(include="conv*"), r"Selection\.include: need a list"),
        (lambda: fp.Ranking(cost="watts"), r"Ranking\.cost: need one of"),
        (lambda: fp.Ranking(flops_reg=-1), r"Ranking\.flops_reg: need a number in \[0, 1000\]"),
        (lambda: fp.Ranking(batches=-2), r"Ranking\.batches: need an int >= 0 or None"),
        (lambda: fp.Selection.from_dict({"amont": 0.2}), r"unknown keys \['amont'\]"),
        (lambda: fp.Ranking.from_json("{", source="r.json"), r"r\.json: not valid JSON"),
    ],
)
def test_bad_settings_name_the_field_and_the_fix(build, message):
    with pytest.raises(ConfigError, match=message):
        build()


def test_a_criterion_object_does_not_pretend_to_be_json():
    ranking = fp.Ranking(criterion=fp.get_criterion("l1"))
    with pytest.raises(ConfigError, match="register it"):
        ranking.to_json()


def test_prune_takes_the_objects_or_the_flat_keywords_alike():
    flat = _model()
    plan_flat = fp.prune(flat, X, amount=0.25, scope="global", criterion="l2", normalize=False)
    nested = _model()
    plan_nested = fp.prune(
        nested,
        X,
        selection=fp.Selection(amount=0.25, scope="global"),
        ranking=fp.Ranking(criterion="l2", normalize=False),
    )
    assert plan_flat.num_removed > 0
    assert plan_nested.to_dict() == plan_flat.to_dict()
    mixed = _model()  # a flat keyword overrides the object's field
    plan_mixed = fp.prune(mixed, X, selection=fp.Selection(amount=0.5, scope="global"), amount=0.25,
                          criterion="l2", normalize=False)  # fmt: skip
    assert plan_mixed.to_dict() == plan_flat.to_dict()


def test_layer_filters_of_the_selection_keep_other_layers_whole():
    model = _model()
    plan = fp.prune(model, X, selection=fp.Selection(amount=0.5, include=("conv2",)))
    assert set(plan.removed_outputs) == {"conv2", "bn2"}
    assert model.conv1.out_channels == 8 and model.conv2.out_channels == 6
    with pytest.raises(ConfigError, match=r"Selection\.include: pattern 'conv9' matches no"):
        fp.prune(_model(), X, selection=fp.Selection(include=("conv9",)))


def test_criteria_receive_the_selection_explicitly():
    seen = []

    class Spy:
        name, needs_data = "spy", False

        def __init__(self, **options):
            pass

        def __call__(self, graph, **context):
            seen.append(context["selection"])
            return {g.name: torch.arange(g.size, dtype=torch.float) for g in graph.prunable}

    selection = fp.Selection(amount=0.25, bins=((8, 0.5),))
    fp.prune(_model(), X, selection=selection, ranking=fp.Ranking(criterion=Spy()))
    assert seen == [selection]
    assert fp.rank(_model(), X, criterion=Spy()) and seen[-1] is None


def test_kmeans_keeps_what_the_selection_leaves_per_group():
    pytest.importorskip("sklearn")
    selection = fp.Selection(amount=0.25, bins=((8, 0.5),))  # conv1 (8 wide) loses half
    model = _model()
    fp.prune(model, X, selection=selection, ranking=fp.Ranking(criterion="kmeans"))
    assert (model.conv1.out_channels, model.conv2.out_channels) == (4, 9)


def test_a_prune_config_hands_the_loop_its_ranking_and_selection():
    config = fp.PruneConfig(
        criterion="taylor", criterion_options={"signed": True}, flops_reg=1e-3, ranking_batches=3,
        round_to=4, include=("conv*",), amount=0.2,
    )  # fmt: skip
    assert config.ranking == fp.Ranking(
        criterion="taylor", options={"signed": True}, flops_reg=1e-3, batches=3
    )
    assert config.selection(0.2, "global") == fp.Selection(
        amount=0.2, scope="global", round_to=4, include=("conv*",), max_fraction=0.5
    )
