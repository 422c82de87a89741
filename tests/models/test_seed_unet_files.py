"""Seed 000's own files load into ``--model unet`` as the seed wrote them.

A Prune_U-Net user holds a U-Net checkpoint in the layout of milesial/Pytorch-UNet as it was in
2018 (a ``.pth`` state dict with its key names and conv biases, a ``module.`` prefix from
multi-GPU training), and the seed's channel file: 22 numbers following its "Channels" table, whose
up-block lines count the concatenated input width, with bilinear upsampling.

The reference below is written from that description (not imported from anywhere): a U-Net
built from the 22-number list the way the seed's code builds its pruned models.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import filterprune as fp
from filterprune.errors import CheckpointError
from filterprune.models import create_model
from filterprune.recipes.models import widths_plan
from filterprune.store.channels import write_channel_txt
from filterprune.testing import randomize_norms

# the seed's "Channels" table: before and after pruning
BEFORE = [64, 64, 128, 128, 256, 256, 512, 512, 512, 512, 1024, 256, 256, 512, 128, 128, 256, 64,
          64, 128, 64, 64]  # fmt: skip
AFTER = [13, 19, 74, 68, 182, 190, 393, 361, 373, 388, 749, 187, 189, 379, 73, 97, 165, 38, 49,
         68, 18, 56]  # fmt: skip
SEED_ARGS = {"layout": "2018", "bilinear": True, "in_channels": 3, "num_classes": 1}


def _double(cin: int, mid: int, cout: int) -> nn.Module:
    block = nn.Module()
    block.conv = nn.Sequential(
        nn.Conv2d(cin, mid, 3, padding=1), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
        nn.Conv2d(mid, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )  # fmt: skip
    block.forward = lambda x: block.conv(x)
    return block


class _Down(nn.Module):
    def __init__(self, cin, mid, cout):
        super().__init__()
        self.mpconv = nn.Sequential(nn.MaxPool2d(2), _double(cin, mid, cout))

    def forward(self, x):
        return self.mpconv(x)


class _Up(nn.Module):
    def __init__(self, cin, mid, cout):
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
        self.conv = _double(cin, mid, cout)

    def forward(self, x1, x2):
        x1 = self.up(x1)
        dy, dx = x2.size(2) - x1.size(2), x2.size(3) - x1.size(3)
        x1 = F.pad(x1, (dx // 2, dx - dx // 2, dy // 2, dy - dy // 2))
        return self.conv(torch.cat([x2, x1], dim=1))


class _Out(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        return self.conv(x)


class SeedUNet(nn.Module):
    """The 2018 layout, built from the seed's 22-number channel list."""

    def __init__(self, c: list[int], n_channels: int = 3, n_classes: int = 1):
        super().__init__()
        self.inc = nn.Module()
        self.inc.conv = _double(n_channels, c[0], c[1])
        self.inc.forward = lambda x: self.inc.conv(x)
        self.down1, self.down2 = _Down(c[1], c[2], c[3]), _Down(c[3], c[4], c[5])
        self.down3, self.down4 = _Down(c[5], c[6], c[7]), _Down(c[7], c[8], c[9])
        self.up1, self.up2 = _Up(c[10], c[11], c[12]), _Up(c[13], c[14], c[15])
        self.up3, self.up4 = _Up(c[16], c[17], c[18]), _Up(c[19], c[20], c[21])
        self.outc = _Out(c[21], n_classes)

    def forward(self, x):
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x5 = self.down4(x4)
        x = self.up1(x5, x4)
        x = self.up2(x, x3)
        x = self.up3(x, x2)
        x = self.up4(x, x1)
        return self.outc(x)


def _seed_files(tmp_path: Path, channels: list[int], *, prefix: str = "module.") -> SeedUNet:
    torch.manual_seed(0)
    ref = randomize_norms(SeedUNet(channels)).eval()
    torch.save({prefix + k: v for k, v in ref.state_dict().items()}, tmp_path / "model.pth")
    write_channel_txt(tmp_path / "channels.txt", channels)
    return ref


def _factory():
    return create_model("unet", **SEED_ARGS)


@pytest.mark.parametrize("channels", [AFTER, BEFORE], ids=["pruned", "full"])
def test_the_seeds_checkpoint_and_channel_file_load_and_compute_the_same(tmp_path, channels):
    ref = _seed_files(tmp_path, channels)
    x = torch.randn(2, 3, 32, 32)
    plan = widths_plan(_factory, x, channel_txt=tmp_path / "channels.txt")
    model = fp.load(tmp_path / "model.pth", _factory, plan=plan)
    with torch.no_grad():
        want, got = ref(x), model(x)
        other = ref(torch.randn_like(x))
    assert (want - other).abs().max() > 1e-3 * want.abs().max()  # the output depends on x
    assert (got - want).abs().max() <= 1e-5 * want.abs().max()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 19 and all(c.bias is not None for c in convs)


def test_the_unprefixed_and_the_current_milesial_names_load_too(tmp_path):
    ref = _seed_files(tmp_path, BEFORE, prefix="")
    state = torch.load(tmp_path / "model.pth", weights_only=True)
    renames = [  # milesial's names since 2020: double_conv, maxpool_conv
        (r"^inc\.conv\.conv\.", "inc.double_conv."),
        (r"^(down\d)\.mpconv\.1\.conv\.", r"\1.maxpool_conv.1.double_conv."),
        (r"^(up\d)\.conv\.conv\.", r"\1.conv.double_conv."),
    ]
    current = {}
    for key, value in state.items():
        for pattern, new in renames:
            key = re.sub(pattern, new, key)
        current[key] = value
    assert any("maxpool_conv" in k for k in current)
    for name, weights in (("plain", state), ("current", current)):
        torch.save(weights, tmp_path / f"{name}.pth")
        model = fp.load(tmp_path / f"{name}.pth", _factory)
        x = torch.randn(1, 3, 32, 32)
        with torch.no_grad():
            assert torch.allclose(model(x), ref(x), atol=1e-5, rtol=1e-4), name


def test_a_file_of_something_else_lists_the_unmatched_keys(tmp_path):
    torch.save({"module.encoder.0.weight": torch.zeros(4, 3, 3, 3)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match=r"missing keys \['inc\.0\.weight'.*unexpected keys "
                       r"\['encoder\.0\.weight'\]"):  # fmt: skip
        fp.load(tmp_path / "other.pth", _factory)


def test_a_concatenation_line_that_does_not_add_up_is_named(tmp_path):
    bad = list(AFTER)
    bad[10] = 750  # 361 + 388 = 749
    write_channel_txt(tmp_path / "channels.txt", bad)
    with pytest.raises(ValueError, match=r"line 11 .* up1\.conv\.0 as 750.* = 749"):
        widths_plan(_factory, torch.randn(1, 3, 32, 32), channel_txt=tmp_path / "channels.txt")


def test_the_cli_evaluates_the_seeds_files(tmp_path):
    _seed_files(tmp_path, AFTER)
    argv = [
        sys.executable, "-m", "filterprune", "eval", "--load", str(tmp_path / "model.pth"),
        "--model", "unet", "--model-arg", "layout=2018", "--model-arg", "bilinear=true",
        "--task", "segment", "--channel-txt", str(tmp_path / "channels.txt"),
        "--image-size", "32", "--limit", "4",
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "dice" in done.stdout.lower(), done.stdout
