"""The zoo's YOLO-style detector: output format, and exact pruning that keeps the head's outputs."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
import torch

import filterprune as fp
from filterprune.errors import ConfigError
from filterprune.models import create_model
from filterprune.testing import assert_equivalent, randomize_norms

TINY = {"base": 4, "num_classes": 3}


@pytest.fixture(autouse=True, scope="module")
def _single_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize("size", [32, 48, 64, 96])
def test_three_maps_at_strides_8_16_32(size: int) -> None:
    model = create_model("yolo_tiny", **TINY).eval()
    with torch.no_grad():
        maps = model(torch.randn(2, 3, size, size))
    assert [tuple(m.shape) for m in maps] == [
        (2, 7, -(-size // s), -(-size // s)) for s in (8, 16, 32)
    ]
    assert sum(p.numel() for p in model.parameters()) < 150_000, "tiny preset is not tiny"


def test_class_logits_start_at_the_prior_and_bad_options_are_named() -> None:
    model = create_model("yolo_tiny", **TINY).eval()
    with torch.no_grad():
        maps = model(torch.randn(1, 3, 32, 32))
    probs = maps[0][:, 4:].sigmoid()
    assert probs.mean() < 0.05  # a rare-object prior: the loss starts near its negatives' level
    with pytest.raises(ConfigError, match="depth"):
        create_model("yolo_tiny", depth=0)
    with pytest.raises(ConfigError, match="base"):
        create_model("yolo_tiny", base=0)


@pytest.mark.parametrize("amount", [0.5])
def test_prunes_exactly_and_keeps_every_output_channel(amount: float) -> None:
    torch.manual_seed(0)
    model = randomize_norms(create_model("yolo_tiny", **TINY, depth=2).eval(), seed=1)
    x = torch.randn(2, 3, 64, 64)
    original = copy.deepcopy(model)
    plan = fp.prune(model, x, amount=amount, criterion="l1")
    assert_equivalent(original, model, plan, x)
    before = sum(p.numel() for p in original.parameters())
    after = sum(p.numel() for p in model.parameters())
    assert after < (1 - amount / 2) * before
    with torch.no_grad():
        assert [m.shape for m in model(x)] == [m.shape for m in original(x)]
    for head in model.heads:  # the outputs: 4 distances and 3 classes at every scale
        assert head.box[-1].out_channels == 4 and head.cls[-1].out_channels == 3
