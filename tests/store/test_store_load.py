"""Saving and loading without pickle; channel lists and width specs."""

from __future__ import annotations

import pytest
import torch
from loop_tiny import make_model

import filterprune as fp
from filterprune.loop import (
    CheckpointError,
    load,
    save,
)
from filterprune.plan import Plan
from filterprune.store.checkpoint import write_checkpoint_dir
from filterprune.store.files import atomic_write_text


def test_save_and_load_round_trip(tmp_path, example):
    model = make_model()
    plan = fp.prune(model, example, amount=0.5)
    save(model, plan, tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [
        "manifest.json",
        "plan.json",
        "weights.safetensors",
    ]
    again = load(tmp_path / "ckpt", make_model)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(again(example), model(example), rtol=0, atol=0)
    # a bare weights file uses the plan beside it
    again = load(tmp_path / "ckpt" / "weights.safetensors", make_model)
    assert again.conv1.out_channels == 4


def test_checkpoint_files_are_not_pickles(tmp_path):
    save(make_model(), None, tmp_path / "ckpt")
    head = (tmp_path / "ckpt" / "weights.safetensors").read_bytes()[:16]
    assert not head.startswith(b"\x80") and not head.startswith(b"PK")  # pickle / torch zip
    assert Plan.from_json((tmp_path / "ckpt" / "plan.json").read_text()).is_empty()


def test_shape_mismatch_names_the_layer_and_both_shapes(tmp_path, example):
    model = make_model()
    fp.prune(model, example, amount=0.5)
    save(model, Plan(), tmp_path / "ckpt")  # wrong: the plan is missing
    with pytest.raises(
        CheckpointError,
        match=r"layer 'conv1'.*\(4, 3, 3, 3\) in the checkpoint "
        r"but \(8, 3, 3, 3\) in the model",
    ):
        load(tmp_path / "ckpt", make_model)


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load(tmp_path / "nope", make_model)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="neither a run folder"):
        load(tmp_path / "empty", make_model)


def test_write_checkpoint_dir_replaces_atomically(tmp_path):
    for size in (1, 2):
        write_checkpoint_dir(tmp_path / "c", weights=b"x" * size, plan=Plan())
    assert (tmp_path / "c" / "weights.safetensors").read_bytes() == b"xx"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]
    atomic_write_text(tmp_path / "f.txt", "a")
    atomic_write_text(tmp_path / "f.txt", "b")
    assert (tmp_path / "f.txt").read_text() == "b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "f.txt"]
