"""Plans: JSON round-trips, composition across iterations, graph updates without re-tracing."""

import copy
import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import filterprune as fp
from filterprune.models import create_model
from filterprune.testing import max_difference, randomize_norms


def _resnet():
    return randomize_norms(
        create_model("resnet18", width=1 / 16, stem="cifar", num_classes=10)
    ).eval()


def test_iterations_with_an_updated_graph_match_fresh_analysis():
    x = torch.randn(1, 3, 32, 32)
    a, b = _resnet(), _resnet()
    b.load_state_dict(a.state_dict())
    graph = fp.analyze(a, x)
    plans_a, plans_b = [], []
    for _ in range(3):
        plans_a.append(fp.prune(a, x, amount=0.2, criterion="l1", graph=graph))
        plans_b.append(fp.prune(b, x, amount=0.2, criterion="l1"))
    assert [p.to_dict() for p in plans_a] == [p.to_dict() for p in plans_b]
    assert torch.equal(a(x), b(x))


def test_composed_plan_rebuilds_the_architecture_and_loads_weights():
    x = torch.randn(2, 3, 32, 32)
    model = _resnet()
    original = copy.deepcopy(model)
    first = fp.prune(model, x, amount=0.25, criterion="l1")
    second = fp.prune(model, x, amount=0.25, criterion="random")
    composed = first.then(second)
    fresh = create_model("resnet18", width=1 / 16, stem="cifar", num_classes=10)
    fp.apply_plan(fresh, fp.Plan.from_json(composed.to_json()))
    fresh.load_state_dict(model.state_dict())
    fresh.eval()
    assert torch.equal(fresh(x), model(x))
    assert max_difference(original, model, composed, x) < 1e-4


def test_plan_that_does_not_fit_is_rejected_and_model_untouched():
    x = torch.randn(1, 3, 32, 32)
    model = _resnet()
    plan = fp.prune(model, x, amount=0.25, criterion="l1")
    with pytest.raises(fp.PlanError, match="does not fit module"):
        fp.apply_plan(model, plan)  # already applied
    other = create_model("vgg16", width=1 / 16, head="cifar", num_classes=10)
    before = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(fp.PlanError):
        fp.apply_plan(other, plan)
    assert all(torch.equal(before[k], v) for k, v in other.state_dict().items())


@pytest.mark.parametrize(
    "text, message",
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"removed_outputs": {"a": [1]}}', "no 'channels.a' entry"),
        ('{"removed_outputs": {"a": [-1]}, "channels": {"a": [3, 4]}}', "non-negative integers"),
        ('{"removed_outputs": {"a": [4]}, "channels": {"a": [3, 4]}}', "distinct indices below 4"),
        ('{"removed_outputs": {"a": [0, 1, 2, 3]}, "channels": {"a": [3, 4]}}', "every channel"),
        ('{"format": 99}', "not supported"),
    ],
)
def test_malformed_plans_get_clear_errors(text, message):
    with pytest.raises(fp.PlanError, match=message):
        fp.Plan.from_json(text, source="spec.json")


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
        max_leaves=12,
    )
)
def test_plan_parser_fuzz_never_crashes_unexpectedly(data):
    try:
        plan = fp.Plan.from_json(json.dumps(data))
    except fp.PlanError:
        return
    assert fp.Plan.from_json(plan.to_json()).to_dict() == plan.to_dict()


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["a", "b", "c"]),
        st.lists(st.integers(0, 9), unique=True, max_size=9),
        max_size=3,
    )
)
def test_valid_plans_round_trip(removed):
    plan = fp.Plan(
        removed_outputs=removed,
        channels={k: [10, 10] for k in removed},
        groups={k: sorted(v) for k, v in removed.items()},
    )
    again = fp.Plan.from_json(plan.to_json())
    assert again.to_dict() == plan.to_dict()


def test_hand_made_plan_with_indices_out_of_range_is_refused():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 2, 1))
    plan = fp.Plan(removed_outputs={"0": [1, 7]}, removed_inputs={"1": [1, 7]})
    with pytest.raises(fp.PlanError, match="outside 0..3 from module '0'"):
        fp.apply_plan(model, plan)
    assert model[0].weight.shape == (4, 3, 3, 3)
