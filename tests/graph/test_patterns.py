"""Architecture patterns of public CNN families (tests/graph/patterns.py): each prunes exactly.

The oracle compares the pruned model with the original whose removed channels are zeroed and
whose LayerNorm/GroupNorm statistics cover the kept channels only; the original's output must
depend on its input, or the comparison would prove nothing.
"""

import copy

import pytest
import torch
from exact import example as _x
from exact import prune_exactly
from patterns import PATTERNS

import filterprune as fp
from filterprune.testing import max_difference, output_change, randomize_norms


def _pruned(name, amount=0.3, **options):
    return prune_exactly(name, PATTERNS[name], amount, **options)


def _kept_fraction(original, model):
    return fp.param_count(model) / fp.param_count(original)


def _reasons(graph):
    return [r for g in graph.frozen for r in g.reasons]


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_every_kept_group_names_its_op_and_source_line(name):
    graph = fp.analyze(PATTERNS[name](), _x())
    for group in graph.frozen:
        for reason in group.reasons:
            assert "patterns.py:" in reason, reason


def test_nfnet_gain_is_sliced_with_the_filters_and_standardised_inputs_are_kept():
    original, model, plan, graph = _pruned("nfnet")
    assert model.conv2.gain.shape == (model.conv2.out_channels, 1, 1, 1)
    assert model.conv2.out_channels < original.conv2.out_channels
    assert model.conv1.in_channels == original.conv1.in_channels  # standardised over inputs
    assert any("computes its weight" in r and "'conv1'" in r for r in _reasons(graph))


def test_nfnet_folded_into_plain_convs_prunes_its_inputs():
    model = randomize_norms(PATTERNS["nfnet"]()).eval()
    x = _x()
    with torch.no_grad():
        before = model(x)
    assert fp.fold_computed_weights(model) == ["stem", "conv1", "conv2"]
    with torch.no_grad():
        assert float((model(x) - before).abs().max()) < 1e-5 * float(before.abs().max())
    original = copy.deepcopy(model)
    plan = fp.prune(model, x, amount=0.3)
    assert max_difference(original, model, plan, x) < 1e-5 * float(before.abs().max())
    assert _kept_fraction(original, model) < 0.75


def test_layer_subclass_with_unknown_tensor_keeps_its_channels_and_says_why():
    from patterns import ScaledStdConv2d

    class Mixer(ScaledStdConv2d):
        def __init__(self, cin, cout, k, padding=0):
            super().__init__(cin, cout, k, padding)
            self.mix = torch.nn.Parameter(torch.eye(cout))  # (C_out, C_out): axis unknown

        def forward(self, x):
            return torch.einsum("oc,nchw->nohw", self.mix, super().forward(x))

    model = PATTERNS["nfnet"]()
    model.conv1 = Mixer(16, 16, 3, padding=1)
    graph = fp.analyze(model, _x())
    assert "stem" in {g.name for g in graph.frozen}
    assert any("'mix' [16, 16]" in r and "Mixer" in r for r in _reasons(graph))


def test_res2net_width_follows_the_channels_each_split_loses():
    original, model, plan, graph = _pruned("res2net")
    for before, after in zip(original.blocks, model.blocks, strict=True):
        assert after.width < before.width  # every piece lost the same number
        assert after.conv1[0].out_channels == after.width * (after.nums + 1)
        assert all(c[0].in_channels == after.width for c in after.convs)
    assert not any("'split'" in r for r in _reasons(graph)), graph.report()
    assert "blocks.0.width" in plan.removed_outputs
    assert fp.param_count(model) / fp.param_count(original) < 0.65


def test_sknet_selective_kernel_prunes_its_branches_together():
    original, model, plan, graph = _pruned("sknet")
    sk = model.sk
    assert sk.convs[0][0].out_channels == sk.convs[1][0].out_channels == sk.fcs[0].out_channels
    assert sk.convs[0][0].out_channels < 16 and sk.fc[0].out_channels < 4
    assert _kept_fraction(original, model) < 0.65


def test_sknet_attention_view_by_a_feature_attribute_prunes_the_branches():
    original, model, plan, graph = _pruned("sknet_fixed")
    sk = model.sk
    assert sk.features == sk.convs[0][0].out_channels < 16
    assert sk.fcs[0].out_channels == sk.features


def test_convnext_stream_is_pruned_with_layer_scale_and_channels_first_layernorm():
    original, model, plan, graph = _pruned("convnext")
    assert "stage1.0.layer_scale" in plan.removed_outputs
    assert "stem.1" in plan.removed_outputs  # LayerNorm2d over NCHW channels
    block = model.stage1[0]
    assert block.layer_scale.shape == (block.dwconv.out_channels, 1, 1)
    assert block.norm.normalized_shape == (block.dwconv.out_channels,)
    assert model.stem[0].out_channels < 8
    assert _kept_fraction(original, model) < 0.7


def test_convnext_v2_grn_keeps_hidden_channels_and_says_why_stream_prunes():
    original, model, plan, graph = _pruned("convnext_v2")
    grn = [r for r in _reasons(graph) if "'mean' over the channel dimension" in r]
    assert grn and all("grn" in r and "patterns.py:" in r for r in grn)
    assert model.stem[0].out_channels < 8  # the stream
    assert "stage1.0.grn.gamma" not in plan.removed_outputs
    assert _kept_fraction(original, model) < 0.85


def test_resnext_grouped_conv_loses_channels_inside_groups_by_default():
    original, model, plan, graph = _pruned("resnext")
    conv = model.conv2[0]
    assert conv.groups == 4 and conv.in_channels == conv.out_channels < 16
    assert model.gn.num_groups == 4 and model.gn.num_channels < 16
    within = _kept_fraction(original, model)
    whole_original, whole_model, _, _ = _pruned("resnext", grouped="whole")
    assert whole_model.conv2[0].groups < 4
    assert within < 0.75


def test_ghostnet_odd_width_slice_follows_its_attribute():
    original, model, plan, graph = _pruned("ghostnet")
    ghost = model.b2.ghost1  # 23 of 24 concatenated channels kept by out[:, :self.oup]
    kept = ghost.primary_conv[0].out_channels + ghost.cheap_operation[0].out_channels
    assert ghost.oup < 23 and kept in (ghost.oup, ghost.oup + 1)
    assert model.b2.ghost2.primary_conv[0].in_channels == ghost.oup
    assert not any("'__getitem__'" in r for r in _reasons(graph)), graph.report()
    assert fp.param_count(model) / fp.param_count(original) < 0.7


def test_mobilevit_layernorm_and_groupnorm_channels_are_pruned():
    original, model, plan, graph = _pruned("mobilevit")
    assert {"block.norm1", "block.norm2"} <= set(plan.removed_outputs)  # the token stream
    assert model.block.attn.qkv.out_features == 36  # q @ k^T sums over the head channels
    assert any("'matmul'" in r and "block.attn" in r for r in _reasons(graph))
    assert model.head[1].num_channels < 20 and model.head[1].num_groups == 1
    assert _kept_fraction(original, model) < 0.7


def test_yolo_style_detector_prunes_exactly_with_its_head_outputs_intact():
    from yolo import TinyYOLO

    from filterprune.testing import calibrate_batchnorm

    gen = torch.Generator().manual_seed(0)
    model = TinyYOLO()
    calibrate_batchnorm(model, [torch.randn(4, 3, 64, 64, generator=gen) for _ in range(2)])
    randomize_norms(model, statistics=False)
    x, other = torch.randn(1, 3, 64, 64, generator=gen), torch.randn(1, 3, 64, 64, generator=gen)
    assert output_change(model, x, other) > 0.1
    original = copy.deepcopy(model)
    plan = fp.prune(model, x, amount=0.3, scope="per_group", layer_types=())
    with torch.no_grad():
        scale = float(original(x).abs().max())
    assert max_difference(original, model, plan, x, restrict_norms=True) / scale < 1e-5
    head = model.detect
    assert [s[2].out_channels for s in head.cv2] == [64, 64, 64]
    assert [s[2].out_channels for s in head.cv3] == [3, 3, 3]
    assert torch.equal(head.dfl.conv.weight.flatten(), torch.arange(16.0))
    assert model(x).shape == original(x).shape == (1, 7, 84)
    assert model.p4[1].cv1.conv.out_channels < 64  # C3k2 chunk halves
    assert model.p5[2].cv1.conv.out_channels < 32  # SPPF
    assert fp.param_count(model) / fp.param_count(original) < 0.6
