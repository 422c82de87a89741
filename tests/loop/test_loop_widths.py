"""Width specs: U-Net channel lists (the seed's format) and {layer: channels} JSON."""

from __future__ import annotations

import json

import pytest
import torch
from loop_tiny import make_model

import filterprune as fp
from filterprune.loop import (
    channel_layers,
    channel_list,
    channel_widths,
    load,
    plan_from_widths,
    read_channel_txt,
    read_spec,
    save,
    unet_channel_list,
    unet_conv_names,
    unet_from_channels,
    write_channel_txt,
)
from filterprune.models import create_model


def test_unet_channel_list_has_the_seed_count():
    model = create_model("unet", base=4)
    names = unet_conv_names(model)
    assert len(names) == 22 and names[0] == "inc.0" and "up1.up" in names and "outc" not in names
    assert unet_channel_list(model)[:4] == [4, 4, 8, 8]
    assert len(unet_conv_names(create_model("unet", base=4, bilinear=True))) == 18


def test_unet_rebuilt_from_its_channel_list_loads_the_pruned_weights(tmp_path):
    torch.manual_seed(0)
    model = create_model("unet", base=4)
    x = torch.randn(1, 3, 32, 32)
    fp.prune(model, x, amount=0.3)
    channels = unet_channel_list(model)
    write_channel_txt(tmp_path / "channels.txt", channels)
    save(model, None, tmp_path / "ckpt")
    read = read_channel_txt(tmp_path / "channels.txt", expected=22)
    assert read == channels
    rebuilt, plan = unet_from_channels(read, base=4)
    assert unet_channel_list(rebuilt) == channels
    again = load(tmp_path / "ckpt", lambda: create_model("unet", base=4), plan=plan)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("4\n4\nfour\n", r"channels.txt:3: 'four' is not an integer"),
        ("4\n\n0\n", r"channels.txt:3: channel count must be >= 1, got 0"),
        ("4\n-2\n", r"channels.txt:2: channel count must be >= 1, got -2"),
        ("4\n4\n", r"channels.txt: has 2 channel counts but the model has 22 conv layers"),
    ],
)
def test_channel_txt_errors_name_file_and_line(tmp_path, text, message):
    (tmp_path / "channels.txt").write_text(text)
    with pytest.raises(ValueError, match=message):
        read_channel_txt(tmp_path / "channels.txt", expected=22)


def test_channel_txt_skips_blank_lines_and_comments(tmp_path):
    (tmp_path / "c.txt").write_text("# widths\n4\n\n8  # second\n")
    assert read_channel_txt(tmp_path / "c.txt") == [4, 8]
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        read_channel_txt(tmp_path / "missing.txt")


def test_plan_from_widths_keeps_the_first_channels(example):
    model = make_model()
    plan = plan_from_widths(model, {"conv1": 5}, example)
    assert plan.removed_outputs["conv1"] == [5, 6, 7]
    with pytest.raises(ValueError, match=r"layer 'bn1'.*layers are: conv1, conv2"):
        plan_from_widths(model, {"bn1": 5}, example)
    with pytest.raises(ValueError, match=r"'conv1' must keep an int in 1..8 channels, got 9"):
        plan_from_widths(model, {"conv1": 9}, example)
    with pytest.raises(ValueError, match="'fc' cannot be narrowed"):
        plan_from_widths(model, {"fc": 2}, example)


def test_read_spec_accepts_widths_or_a_plan(tmp_path, example):
    (tmp_path / "w.json").write_text(json.dumps({"widths": {"conv1": 4}}))
    assert read_spec(tmp_path / "w.json") == {"conv1": 4}
    plan = fp.prune(make_model(), example, amount=0.5)
    (tmp_path / "p.json").write_text(plan.to_json())
    assert read_spec(tmp_path / "p.json") == plan
    (tmp_path / "bad.json").write_text('{"conv1": "four"}')
    with pytest.raises(ValueError, match="bad.json"):
        read_spec(tmp_path / "bad.json")


class _OutConv(torch.nn.Module):
    """The output head inside a wrapper module, as in the most used public U-Net code."""

    def __init__(self, conv: torch.nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def _wrapped_unet() -> torch.nn.Module:
    model = create_model("unet", base=4)
    model.outc = _OutConv(torch.nn.Conv2d(4, 1, kernel_size=1))
    return model


def test_the_output_head_is_found_by_the_graph_not_by_its_name():
    model = _wrapped_unet()
    names = channel_layers(model)
    assert (
        len(names) == 22
        and "outc.conv" not in names
        and names == unet_conv_names(create_model("unet", base=4))
    )
    assert len(channel_list(model)) == 22


def test_channel_file_with_or_without_the_head_line():
    model = _wrapped_unet()
    channels = channel_list(model)
    without = channel_widths(model, channels)
    assert channel_widths(model, [*channels, 1]) == without  # the head's line, width 1
    assert list(without) == channel_layers(model)
    with pytest.raises(ValueError, match=r"line 23 is the output head outc.conv.*got 5"):
        channel_widths(model, [*channels, 5])


def test_a_wrong_count_lists_the_expected_lines_layer_by_layer():
    model = _wrapped_unet()
    with pytest.raises(ValueError) as info:
        channel_widths(model, [4] * 20, source="seed.txt")
    message = str(info.value)
    assert "seed.txt: has 20 channel counts but the model has 22 conv layers" in message
    assert "line 1 inc.0 (4 channels in the full model)" in message
    assert "line 22 " in message and "line 23" not in message
    assert "output head outc.conv (1) keeps its width and may be listed or left out" in message
