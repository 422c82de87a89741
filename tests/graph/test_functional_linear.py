"""``F.linear`` with a Linear layer's weight and a bias concatenated in forward (issue 30).

Swin-V2 and BEiT: ``F.linear(x, self.qkv.weight, torch.cat((q_bias, k_bias, v_bias)))``. The
call counts as the layer's, the bias pieces are sliced with the heads, and the model is pruned
exactly (compared with the original whose removed channels are zeroed, LayerNorm statistics
over the kept ones, relative to the output's scale, after checking the output has signal).
"""

import pytest
from attention_zoo import TinyViT
from exact import example as _x
from exact import prune_exactly
from sizes_zoo import BeitAttention, CatBiasAttention, OtherBiasAttention

import filterprune as fp

ZOO = {
    "buffer": lambda: TinyViT(CatBiasAttention),
    "zeros_like": lambda: TinyViT(CatBiasAttention, zeros="zeros_like"),
    "other": lambda: TinyViT(OtherBiasAttention),
    "beit": lambda: TinyViT(BeitAttention),
}


def _pruned(name, amount=0.3, **options):
    return prune_exactly(name, ZOO[name], amount, **options)


@pytest.mark.parametrize("name", ["buffer", "zeros_like"])
def test_concatenated_qkv_bias_loses_whole_heads_with_the_layer(name):
    original, model, plan, graph = _pruned(name)
    fresh = ZOO[name]()
    fp.apply_plan(fresh, fp.Plan.from_json(plan.to_json()))
    fresh(_x())  # the plan alone rebuilds a model that runs
    for before, after in zip(original.blocks, model.blocks, strict=True):
        attn = after.attn
        assert attn.num_heads == before.attn.num_heads - 2  # at least 30 % of 4, whole heads
        width = attn.qkv.out_features // 3
        assert attn.q_bias.shape == attn.v_bias.shape == (width,)
        if name == "buffer":  # the zero key bias is a buffer sliced like the others
            assert attn.k_bias.shape == (width,)
        assert attn.proj.in_features == width
    assert "blocks.0.attn.q_bias" in plan.removed_outputs
    assert any(g.heads for g in graph.prunable)


def test_a_bias_of_fixed_length_keeps_the_qkv_channels_and_names_the_op():
    original, model, plan, graph = _pruned("other")
    for before, after in zip(original.blocks, model.blocks, strict=True):
        assert after.attn.num_heads == before.attn.num_heads
        assert after.attn.qkv.out_features == before.attn.qkv.out_features
    reasons = [r for g in graph.frozen for r in g.reasons if "qkv" in g.name]
    assert reasons and all("'linear'" in r and "sizes_zoo.py:" in r for r in reasons), reasons
    assert model.patch.out_channels < original.patch.out_channels  # the rest still prunes


def test_a_width_read_from_the_input_pairs_the_heads_with_the_stream():
    # ``reshape(B, N, C)`` ties the heads' total width to the embedding width read from
    # ``x.shape``: the probe pairs embedding channels h * head_dim ... with head h, so
    # both shrink alike (every block's head h with the same stream channels) and stay equal
    original, model, plan, graph = _pruned("beit")
    group = graph.group("patch")
    assert set(group.heads) == {f"blocks.{i}.attn.num_heads" for i in range(len(model.blocks))}
    hd = original.blocks[0].attn.qkv.out_features // (3 * original.blocks[0].attn.num_heads)
    gone = original.blocks[0].attn.num_heads - model.blocks[0].attn.num_heads
    assert gone >= 1
    assert model.patch.out_channels == original.patch.out_channels - gone * hd
    for after in model.blocks:
        assert after.attn.num_heads * hd == model.patch.out_channels == after.attn.proj.in_features
    fresh = ZOO["beit"]()
    fp.apply_plan(fresh, fp.Plan.from_json(plan.to_json()))
    fresh(_x())  # the plan alone rebuilds a model that runs
