"""The equivalence oracle and freezing rules on hand-written models."""

import copy

import pytest
import torch

import filterprune as fp
from filterprune.testing import max_difference, randomize_norms

from cases import ALL


def _input():
    return torch.randn(2, 3, 8, 8)


@pytest.mark.parametrize("name", sorted(ALL))
@pytest.mark.parametrize("amount", [0.25, 0.5])
def test_pruned_equals_masked_original(name, amount):
    model = randomize_norms(ALL[name]()).eval()
    x = _input()
    original = copy.deepcopy(model)
    plan = fp.prune(model, x, amount=amount, criterion="random")
    # LayerNorm/GroupNorm statistics over kept channels only (the residual case's LayerNorm)
    assert max_difference(original, model, plan, x, restrict_norms=True) < 1e-5
    fresh = ALL[name]()
    fp.apply_plan(fresh, fp.Plan.from_json(plan.to_json()))
    assert {k: v.shape for k, v in fresh.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()
    }


def _frozen_names(graph):
    return {g.name for g in graph.frozen}


def _reasons(graph):
    return " | ".join(r for g in graph.frozen for r in g.reasons)


def test_constant_slice_is_frozen_with_reason():
    g = fp.analyze(ConstantSlice := ALL["constant_slice"](), _input())
    assert "a" in _frozen_names(g)
    assert "__getitem__" in _reasons(g) and "cases.py" in _reasons(g)
    assert {x.name for x in g.prunable} == {"b", "c"}
    del ConstantSlice


def test_writing_channels_by_position_is_frozen():
    g = fp.analyze(ALL["constant_setitem"](), _input())
    assert "a" in _frozen_names(g) and "__setitem__" in _reasons(g)


def test_constant_split_is_frozen():
    g = fp.analyze(ALL["constant_split"](), _input())
    assert "a" in _frozen_names(g)
    assert "split" in _reasons(g)


def test_baked_view_is_found_by_probe():
    g = fp.analyze(ALL["constant_view"](), _input())
    assert "a" in _frozen_names(g), g.report()
    assert "b" in {x.name for x in g.prunable}
    without = fp.analyze(ALL["constant_view"](), _input(), probe=False)
    assert "a" not in _frozen_names(without)  # only the probe can see the baked 16


def test_custom_autograd_function_is_frozen_not_grouped():
    g = fp.analyze(ALL["custom_op"](), _input())
    assert "a" in _frozen_names(g)
    assert "Doubler" in _reasons(g)
    assert "b" in {x.name for x in g.prunable}


def test_unknown_op_freezes_what_it_touches():
    g = fp.analyze(ALL["unknown_op"](), _input())
    assert "a" in _frozen_names(g) and "fft2" in _reasons(g)
    assert "b" in {x.name for x in g.prunable}


def test_residual_add_and_sub_share_one_group():
    g = fp.analyze(ALL["residual"](), _input())
    group = g.group("stem.0")
    producers = set(group.producers)
    assert {"stem.0", "b1.0", "b2.0", "shared"} <= producers
    assert not group.frozen


def test_squeeze_excite_gate_joins_the_gated_group():
    g = fp.analyze(ALL["squeeze_excite"](), _input())
    group = g.group("conv.0")
    assert {"fc2", "lin2"} <= set(group.producers)
    assert {m.module for m in group.members if m.role == "in"} >= {"fc1", "lin1", "head"}


def test_grouped_conv_loses_channels_inside_every_group_by_default():
    model = ALL["grouped"]()
    x = _input()
    original = copy.deepcopy(model)
    plan = fp.prune(model, x, amount=0.5, criterion="l1")
    assert model.g.groups == 4 and model.g.in_channels < 8
    assert model.g.weight.shape == (model.g.out_channels, model.g.in_channels // 4, 3, 3)
    assert model.gn.num_groups == 6
    assert model.dwm.groups == model.dwm.in_channels  # depthwise: whole groups
    per_group = [[i // 2 for i in plan.removed_inputs["g"]].count(g) for g in range(4)]
    assert len(set(per_group)) == 1 and per_group[0] > 0
    assert max_difference(original, model, plan, x, restrict_norms=True) < 1e-5


def test_grouped_conv_loses_whole_groups_on_request():
    model = ALL["grouped"]()
    x = _input()
    fp.prune(model, x, amount=0.5, criterion="l1", grouped="whole")
    assert model.g.groups * (model.g.in_channels // model.g.groups) == model.g.in_channels
    assert model.g.out_channels % model.g.groups == 0 and model.g.groups < 4
    assert (
        model.dwm.groups == model.dwm.in_channels
        and model.dwm.out_channels == 2 * model.dwm.in_channels
    )
    assert model.gn.num_channels % model.gn.num_groups == 0
    model(x)


def test_chunk_keeps_halves_equal():
    model = ALL["chunk_split"]()
    g = fp.analyze(model, _input())
    stem = g.group("stem.0")
    assert stem.size == 4  # channel i of each half is one unit
    assert all(len(p) == 2 for p in stem.members[0].positions)


def test_concat_twice_removes_both_copies():
    model = ALL["concat_twice"]()
    plan = fp.prune(model, _input(), amount=0.5, criterion="l1")
    removed = plan.removed_outputs["a"]
    assert plan.removed_inputs["b"] == sorted(removed + [i + 6 for i in removed])


def test_flatten_linear_maps_one_channel_to_hw_features():
    model = ALL["flatten_linear"]()
    plan = fp.prune(model, _input(), amount=0.4, criterion="l1")
    removed = plan.removed_outputs["b"]
    want = sorted(c * 16 + i for c in removed for i in range(16))
    assert plan.removed_inputs["fc"] == want
    assert model.fc.in_features == 16 * model.b.out_channels


def test_zero_amount_is_bit_identical():
    model = randomize_norms(ALL["residual"]()).eval()
    x = _input()
    before = model(x)
    plan = fp.prune(model, x, amount=0.0)
    assert plan.is_empty()
    assert torch.equal(before, model(x))


def test_model_output_and_ignored_layers_stay():
    model = ALL["transposed"]()
    g = fp.analyze(model, _input(), ignore=["up"])
    assert "out" in _frozen_names(g) and "up" in _frozen_names(g)
    assert "ignored by the user" in _reasons(g)
    with pytest.raises(ValueError, match="matches no module"):
        fp.analyze(model, _input(), ignore=["nope*"])
