"""``fp.inspect`` lists attention groups as heads: count, head dimension, what is frozen and why
(issue 30), on the attention test zoo (tests/graph/attention_zoo.py)."""

import torch
from attention_zoo import ZOO

import filterprune as fp


def _x():
    return torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))


def test_heads_are_listed_with_their_count_dimension_and_count_attribute():
    found = fp.inspect(ZOO["swin"](), _x())
    text = str(found)
    assert "attention: 1 group of heads, 1 prunable, 0 frozen" in text
    assert "- attn.qkv: 4 heads of dimension 8 (count: attn.num_heads), prunable" in text
    assert found.attention == [
        {"group": "attn.qkv", "heads": 4, "head_dim": 8, "counts": ["attn.num_heads"], "frozen": []}
    ]


def test_grouped_query_heads_count_their_key_value_heads():
    found = fp.inspect(ZOO["gqa_repeat"](), _x())
    (first, *_) = found.attention
    assert first["heads"] == 4 and first["head_dim"] == 8  # 4 kv heads of 8 (64 wide, 8 heads)
    assert "blocks.0.attn.num_kv_heads" in first["counts"]


def test_frozen_heads_say_why_with_the_op_and_source_line():
    found = fp.inspect(ZOO["literal_heads"](), _x())
    assert len(found.attention) == 2
    for entry in found.attention:
        assert entry["heads"] == 4 and entry["head_dim"] == 8
        assert entry["frozen"] and all("attention_zoo.py:" in r for r in entry["frozen"])
        assert entry["counts"] == [entry["group"].replace("qkv", "num_heads")]
    assert "attention: 2 groups of heads, 0 prunable, 2 frozen" in str(found)
    # a channel count that follows the heads (attn_dim) is listed as a count, not as heads
    assert "attn_dim (count attribute)" in str(found)
