"""Channel counts read from module attributes (issue 28): the attributes follow the pruning.

Each model of tests/graph/sizes_zoo.py is pruned at
30 % per group over every layer kind and compared with the original whose removed channels are
zeroed, relative to the output's scale, after checking that the output depends on its input.
The plan, applied to a freshly built model, must give the same shapes and attributes.
Res2Net's ``split(self.width)``, GhostNet's ``out[:, :self.oup]`` and SKNet's attention view by
``self.features`` are tested in test_patterns.py.
"""

import copy

import pytest
import torch
from sizes_zoo import SIZES

import filterprune as fp
from filterprune.testing import max_difference, output_change, randomize_norms

ZOO = SIZES


def _x(seed=0):
    return torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


def _pruned(name, amount=0.3):
    torch.manual_seed(0)
    model = randomize_norms(ZOO[name]()).eval()
    x = _x()
    assert output_change(model, x, _x(1)) > 1e-3  # the oracle has signal
    original = copy.deepcopy(model)
    graph = fp.analyze(model, x)
    plan = fp.prune(
        model, x, amount=amount, graph=graph, criterion="l1", scope="per_group", layer_types=()
    )
    with torch.no_grad():
        scale = float(original(x).abs().max())
    diff = max_difference(original, model, plan, x, restrict_norms=True) / scale
    assert diff < 1e-5, f"{name}: pruned differs from the reference by {diff:.2e}"
    fresh = ZOO[name]()
    fp.apply_plan(fresh, fp.Plan.from_json(plan.to_json()))
    assert {k: v.shape for k, v in fresh.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()
    }
    assert _ints(fresh) == _ints(model)  # the attributes a plan sets on a fresh model
    with torch.no_grad():
        fresh(x)  # and the fresh model runs
    return original, model, plan, graph


def _ints(model):
    return {
        (n, k): v
        for n, m in model.named_modules()
        for k, v in vars(m).items()
        if isinstance(v, int) and not isinstance(v, bool) and not k.startswith("_")
    }


def _reasons(graph):
    return [r for g in graph.frozen for r in g.reasons]


def test_sknet_split_by_in_channels_over_paths_prunes_the_input_and_the_paths():
    original, model, plan, graph = _pruned("sknet_timm")
    sk, before = model.sk, original.sk
    assert sk.in_channels < before.in_channels
    assert sk.in_channels == model.stem[0].out_channels
    assert sk.paths[0][0].in_channels == sk.in_channels // sk.num_paths
    assert sk.paths[0][0].out_channels < before.paths[0][0].out_channels
    assert sk.num_paths == 2  # the branches stay: each loses the same channels
    assert not graph.frozen or all("model output" in r for r in _reasons(graph)), graph.report()


def test_unequal_pieces_counted_by_their_own_attributes_shrink_apart():
    original, model, plan, graph = _pruned("unequal_split")
    block = model.block
    assert block.a == block.left[0].in_channels == block.narrowed[0].in_channels
    assert block.b == block.right[0].in_channels
    assert block.a + block.b == block.conv1[0].out_channels < 16
    assert not graph.frozen or all("model output" in r for r in _reasons(graph)), graph.report()


@pytest.mark.parametrize("name", ["literal_slice"])
def test_sizes_written_as_numbers_keep_their_channels_and_name_the_op_and_line(name):
    original, model, plan, graph = _pruned(name)
    assert model.block.conv1[0].out_channels == 16
    reasons = [r for r in _reasons(graph) if "block.conv1" in r or "module 'block'" in r]
    assert any("'split'" in r and "sizes_zoo.py:" in r for r in reasons), graph.report()
    assert model.stem[0].out_channels < 16  # the rest still prunes


def test_two_slices_of_one_conv_by_an_attribute_are_two_groups_with_distinct_names():
    original, model, plan, graph = _pruned("dual_path")
    names = [g.name for g in graph.groups]
    assert len(names) == len(set(names))
    assert {"block.proj.0", "block.proj.0#2"} <= set(names)  # residual part, dense part
    block = model.block
    assert block.num_1x1_c < 12  # the residual part shrank, its count with it
    assert block.proj[0].out_channels < 16
    assert not graph.frozen or all("model output" in r for r in _reasons(graph)), graph.report()
