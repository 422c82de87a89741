"""Channel counts read from module attributes (issue 28): the attributes follow the pruning.

Each model of tests/graph/sizes_zoo.py is pruned at
30 % per group over every layer kind and compared with the original whose removed channels are
zeroed, relative to the output's scale, after checking that the output depends on its input.
The plan, applied to a freshly built model, must give the same shapes and attributes.
Res2Net's ``split(self.width)``, GhostNet's ``out[:, :self.oup]`` and SKNet's attention view by
``self.features`` are tested in test_patterns.py.
"""

import pytest
from exact import prune_exactly
from sizes_zoo import SIZES

ZOO = SIZES


def _pruned(name, amount=0.3, **options):
    return prune_exactly(name, ZOO[name], amount, **options)


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


def test_split_by_a_tuple_attribute_counts_each_piece_by_its_element():
    # InceptionNeXt: split(x, self.split_indexes) with (6, 6, 6, 6); each element follows its own
    # piece even where the elements are equal, and a fresh model given the plan gets the same tuple
    original, model, plan, graph = _pruned("inception_next")
    mixer = model.mixer
    assert sum(mixer.split_indexes) == model.stem[0].out_channels < 24
    assert mixer.split_indexes[1:] == (mixer.hw.in_channels, mixer.w.in_channels,
                                       mixer.h.in_channels)  # fmt: skip
    assert isinstance(mixer.split_indexes, tuple)
    assert any(f"mixer.split_indexes[{i}]" in plan.channels for i in range(4)), plan.channels
    assert not graph.frozen or all("model output" in r for r in _reasons(graph)), graph.report()
    fresh = ZOO["inception_next"]()
    import filterprune as fp

    fp.apply_plan(fresh, fp.Plan.from_json(plan.to_json()))
    assert fresh.mixer.split_indexes == mixer.split_indexes
