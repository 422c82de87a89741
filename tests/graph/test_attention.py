"""Attention heads, MLP widths and the embedding stream (tests/graph/attention_zoo.py).

Each model is pruned at 30 % per group over every layer kind and compared with the original
whose removed channels are zeroed and whose LayerNorm statistics cover the kept channels only
(relative to the output's scale, after checking that the output depends on the input).
"""

import math

import pytest
import torch
from attention_zoo import ZOO, ReadWidthAttention
from exact import example as _x
from exact import prune_exactly

import filterprune as fp
from filterprune.criteria.weights import filter_norms
from filterprune.testing import max_difference


def _pruned(name, amount=0.3, **options):
    return prune_exactly(name, ZOO[name], amount, **options)


def _removed(heads, amount=0.3):
    """Heads a per-group ranking removes: at least ``amount`` of them, whole."""
    return math.ceil(amount * heads - 1e-9)


def _attentions(model):
    return [m for n, m in model.named_modules() if n.endswith("attn")]


@pytest.mark.parametrize("name", ["vit_sdpa", "vit_matmul", "separate_qkv", "hybrid"])
def test_whole_heads_go_and_the_module_counts_follow(name):
    original, model, plan, graph = _pruned(name)
    for before, after in zip(_attentions(original), _attentions(model), strict=True):
        assert after.num_heads == before.num_heads - _removed(before.num_heads)
        assert after.head_dim == before.head_dim  # whole heads: each keeps its size
        assert getattr(after, "scale", None) == getattr(before, "scale", None)
        out = getattr(after, "proj", None) or after.o
        assert out.in_features == after.num_heads * after.head_dim
    heads = [g for g in graph.prunable if g.heads]
    left = {a.num_heads for a in _attentions(model)}
    assert heads and all(g.size in left for g in heads)  # the graph follows the removal


@pytest.mark.parametrize("name", ["vit_sdpa", "separate_qkv", "swin", "hybrid"])
def test_the_embedding_stream_shrinks_with_its_tokens_and_tables(name):
    original, model, plan, graph = _pruned(name)
    stem, before = (
        (model.stem[3], original.stem[3]) if name == "hybrid" else (model.patch, original.patch)
    )
    width = stem.out_channels
    assert width < before.out_channels
    for n, p in model.named_parameters():
        if n in ("cls_token", "reg_token", "pos_embed"):
            assert p.shape[-1] == width
    if name == "swin":
        table = model.attn.relative_position_bias_table
        assert table.shape[1] == model.attn.num_heads < original.attn.num_heads
    assert fp.param_count(model) / fp.param_count(original) < 0.6


@pytest.mark.parametrize("name", ["gqa_repeat", "gqa_sdpa"])
def test_grouped_query_attention_loses_whole_groups(name):
    original, model, plan, graph = _pruned(name)
    for before, after in zip(_attentions(original), _attentions(model), strict=True):
        gone = _removed(before.num_kv_heads)
        assert after.num_kv_heads == before.num_kv_heads - gone
        per_kv = before.num_heads // before.num_kv_heads
        assert after.num_heads == before.num_heads - per_kv * gone  # each kv head's q heads
        assert after.k.out_features == after.num_kv_heads * (
            after.q.out_features // after.num_heads
        )


def test_a_head_count_written_as_a_number_is_kept_with_the_op_and_its_line():
    original, model, plan, graph = _pruned("literal_heads")
    reasons = [r for g in graph.frozen for r in g.reasons]
    assert any("'reshape'" in r and "attention_zoo.py:" in r for r in reasons)
    assert all(a.qkv.out_features == 96 for a in _attentions(model))
    assert model.blocks[0].mlp.fc1.out_features < 64  # the rest is still pruned


@pytest.mark.parametrize("name", ["vit_sdpa", "swin", "gqa_sdpa"])
def test_a_plan_rebuilds_the_pruned_model_from_a_fresh_one_and_it_exports(name):
    original, model, plan, graph = _pruned(name)
    fresh = ZOO[name]()
    fp.apply_plan(fresh, fp.Plan.from_json(plan.to_json()))
    assert {k: v.shape for k, v in fresh.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()
    }
    fresh.load_state_dict(model.state_dict())
    x = _x(2)
    with torch.no_grad():
        assert torch.allclose(fresh.eval()(x), model(x), atol=1e-6)
    exported = torch.export.export(fresh, (x,))
    with torch.no_grad():
        assert torch.allclose(exported.module()(x), model(x), atol=1e-5)


def test_head_scores_add_their_q_k_v_and_output_columns():
    model = ZOO["vit_sdpa"]()
    graph = fp.analyze(model, _x())
    group = next(g for g in graph.prunable if g.heads)
    scores = filter_norms(graph, group, 1.0)
    attn = model.blocks[0].attn
    hd = attn.head_dim
    qkv = attn.qkv.weight.detach().abs().sum(1).view(3, attn.num_heads, hd).sum((0, 2))
    proj = attn.proj.weight.detach().abs().sum(0).view(attn.num_heads, hd).sum(1)
    assert torch.allclose(scores.double(), qkv.double() + proj.double(), rtol=1e-5)
    ranked = fp.rank(model, _x(), criterion="l1", graph=graph)[group.name]
    assert torch.equal(ranked.argsort(), scores.argsort())  # one score per head, in that order


def _export_matches(model):
    x = _x(2)
    exported = torch.export.export(model, (x,))
    with torch.no_grad():
        assert torch.allclose(exported.module()(x), model(x), atol=1e-5)


@pytest.mark.parametrize("name", ["read_width", "pooling"])
def test_a_width_read_from_the_input_shrinks_with_the_heads(name):
    # ``C // self.num_heads`` and ``reshape(B, N, C)`` with C from x.shape: the embedding
    # loses head_dim channels per head removed, in every block on that stream
    original, model, plan, graph = _pruned(name)
    pairs = [
        (b, a)
        for b, a in zip(original.modules(), model.modules(), strict=True)
        if isinstance(b, ReadWidthAttention)
    ]
    for before, after in pairs:
        hd = before.v.out_features // before.num_heads
        assert after.num_heads < before.num_heads
        assert after.v.out_features == after.num_heads * hd == after.proj.out_features
        assert after.qk.in_features == after.proj.out_features  # the stream is the heads' width
    _export_matches(model)


@pytest.mark.parametrize("name", ["biased", "cosine"])
def test_heads_cut_inside_keep_their_parts_and_their_biases_follow(name):
    original, model, plan, graph = _pruned(name)
    for before, after in zip(_attentions(original), _attentions(model), strict=True):
        assert after.num_heads == before.num_heads - _removed(before.num_heads)
        assert (after.key_dim, after.val_dim) == (before.key_dim, before.val_dim)
        assert after.attention_biases.shape[0] == after.num_heads
        if name == "cosine":
            assert after.logit_scale.shape[0] == after.num_heads
        assert after.proj.in_features == after.num_heads * after.val_dim
        assert not after.cache or after.cache["b"].shape[0] == after.num_heads
    assert model.patch.out_channels < original.patch.out_channels
    _export_matches(model)


def test_taylor_head_scores_add_their_q_k_v_and_output_columns():
    # Taylor per channel is |mean over tokens of z * dL/dz| per example, averaged over the
    # examples; a head adds it over its q, k, v outputs and its output projection's inputs
    torch.manual_seed(0)
    model = ZOO["vit_sdpa"]().eval()
    x, y = _x(3), torch.tensor([0, 1])
    graph = fp.analyze(model, x)
    group = next(g for g in graph.prunable if g.heads and "blocks.0" in g.name)
    attn = model.blocks[0].attn
    seen = {}

    def keep(name):
        def hook(module, args, out=None):
            t = args[0] if out is None else out
            t.retain_grad()
            seen[name] = t

        return hook

    handles = [
        attn.qkv.register_forward_hook(keep("qkv")),
        attn.proj.register_forward_pre_hook(keep("proj")),
    ]
    torch.nn.functional.cross_entropy(model(x), y).backward()
    for h in handles:
        h.remove()
    model.zero_grad()

    def taylor(t):  # (N, tokens, C) -> (C,)
        return (t * t.grad).mean(1).abs().mean(0).double()

    hd = attn.head_dim
    expected = taylor(seen["qkv"]).view(3, attn.num_heads, hd).sum((0, 2))
    expected += taylor(seen["proj"]).view(attn.num_heads, hd).sum(1)
    scores = fp.rank(
        model,
        x,
        batches=[(x, y)],
        loss_fn=torch.nn.functional.cross_entropy,
        criterion="taylor",
        criterion_options={"where": "module"},
        normalize=False,
        flops_reg=0.0,
        graph=graph,
    )[group.name]
    assert torch.allclose(scores.double(), expected, rtol=1e-4)


@pytest.mark.parametrize("name", ["vit_matmul", "swin", "hybrid"])
def test_heads_dims_shrinks_every_head_alike_and_keeps_the_scale(name):
    # exact by the oracle that also zeroes the removed q/k/v outputs (prune_exactly does so
    # for heads="dims"); the one that zeroes layer inputs only cannot check it: a q/k
    # position is summed inside the product, which no layer input sees
    original, model, plan, graph = _pruned(name, heads="dims")
    for before, after in zip(_attentions(original), _attentions(model), strict=True):
        assert after.num_heads == before.num_heads and after.scale == before.scale
        width = after.proj.in_features
        assert width < before.proj.in_features and width % after.num_heads == 0
        assert after.qkv.out_features == 3 * width
    loose = max_difference(original, model, plan, _x(), restrict_norms=True)
    with torch.no_grad():
        assert loose > 1e-3 * float(original(_x()).abs().max())


def test_heads_dims_keeps_the_head_size_where_sdpa_computes_its_scale():
    original, model, plan, graph = _pruned("vit_sdpa", heads="dims")
    assert model.blocks[0].attn.qkv.out_features == original.blocks[0].attn.qkv.out_features
    reasons = [r for g in graph.frozen for r in g.reasons]
    assert any("scaled_dot_product_attention" in r and "default scale" in r for r in reasons)


def test_shapes_kept_as_tuples_follow_their_parameters():
    original, model, plan, graph = _pruned("shaped")
    assert model.res_scale.shape == (model.stem.out_channels, 1, 1)
    assert model.stem.out_channels < original.stem.out_channels
    heads = model.attn.num_heads
    assert heads == original.attn.num_heads - _removed(original.attn.num_heads)
    assert model.attn.rel_pos.bias_shape == (16, 16, heads)
    assert model.attn.rel_pos.relative_position_bias_table.shape[1] == heads
    _export_matches(model)


def test_a_resampled_position_table_is_sliced_with_the_embedding():
    original, model, plan, graph = _pruned("resampled")
    width = model.patch.out_channels
    assert width < original.patch.out_channels
    assert model.pos_embed.shape == (1, 26, width)


def test_a_conv_reshaped_by_the_width_read_from_the_stream_keeps_that_width():
    # PVT-v2's ``self.sr(x).reshape(B, C, -1)``: the conv's channels pair with the stream's
    original, model, plan, graph = _pruned("reduced")
    width = model.patch.out_channels
    assert width < original.patch.out_channels
    for block, before in zip(model.blocks, original.blocks, strict=True):
        attn = block.attn
        assert attn.sr.out_channels == width == attn.proj.out_features
        assert attn.num_heads == before.attn.num_heads - _removed(before.attn.num_heads)
        assert attn.q.out_features == attn.num_heads * attn.head_dim
    _export_matches(model)


def test_cross_covariance_attention_loses_whole_heads_with_their_temperature():
    # XCiT: ``attn @ v`` sums over each head's channels; whole heads keep that sum inside one
    original, model, plan, graph = _pruned("cross_covariance")
    for before, after in zip(_attentions(original), _attentions(model), strict=True):
        assert after.num_heads == before.num_heads - _removed(before.num_heads)
        assert after.temperature.shape == (after.num_heads, 1, 1)
        assert after.qkv.out_features == 3 * after.proj.in_features == 3 * after.proj.out_features
    assert model.patch.out_channels < original.patch.out_channels
    _export_matches(model)


def test_talking_heads_lose_their_q_k_and_v_heads_under_one_count():
    # CaiT: q/k heads meet ``proj_l``'s inputs, v's heads ``proj_w``'s outputs; one count
    original, model, plan, graph = _pruned("talking_heads")
    for before, after in zip(_attentions(original), _attentions(model), strict=True):
        assert after.num_heads == before.num_heads - _removed(before.num_heads)
        assert after.proj_l.in_features == after.proj_w.out_features == after.num_heads
        assert after.qkv.out_features == 3 * after.proj.in_features
    assert model.patch.out_channels < original.patch.out_channels
    _export_matches(model)


class _OneElementScale(torch.nn.Module):
    """EfficientViM's ``h * self.D`` with ``D`` of one element, on a tensor with no channels."""

    def __init__(self):
        super().__init__()
        self.conv, self.head = torch.nn.Conv2d(3, 8, 3), torch.nn.Conv2d(8, 4, 1)
        self.D = torch.nn.Parameter(torch.full((1,), 0.5))

    def forward(self, x):
        h = x.mean(1, keepdim=True)[..., 1:-1, 1:-1]  # the input's: no prunable channel
        return self.head(self.conv(x) + h * self.D)


def test_a_parameter_of_one_element_meets_no_channels():
    original, model, plan, graph = prune_exactly("one_element", _OneElementScale)
    assert model.conv.out_channels < original.conv.out_channels


def test_multi_query_attention_loses_query_heads_and_keeps_the_shared_key_and_value():
    original, model, plan, graph = _pruned("mqa")
    for before, after in zip(_attentions(original), _attentions(model), strict=True):
        assert after.num_heads == before.num_heads - _removed(before.num_heads)
        assert after.num_kv_heads == 1
        assert (after.k.out_features, after.v.out_features) == (before.head_dim,) * 2
        assert after.q.out_features == after.o.in_features == after.num_heads * before.head_dim
    _export_matches(model)
