"""Models by hub name (``torchvision:NAME``, ``timm:NAME``), without torchvision or timm installed.

A stand-in ``timm`` package written into a temporary folder plays the library: it builds a tiny
CNN the way timm does (``create_model(name, pretrained=..., **kwargs)``, ``pretrained_cfg``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from filterprune.models import HubError, create_model, input_shape, is_hub_name

FAKE_TIMM = '''
"""A stand-in for timm: one tiny model, built the way timm builds models."""
from torch import nn

calls = []


def create_model(name, pretrained=False, num_classes=1000, in_chans=3, width=4):
    calls.append((name, pretrained, num_classes))
    if name != "tinynet":
        raise RuntimeError(f"Unknown model ({name})")
    if pretrained:
        raise AssertionError("filterprune must never ask for pretrained weights")
    model = nn.Sequential(
        nn.Conv2d(in_chans, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, num_classes),
    )
    model.pretrained_cfg = {"input_size": (in_chans, 16, 16)}
    return model
'''


@pytest.fixture
def fake_timm(tmp_path, monkeypatch) -> Path:
    """A folder holding the stand-in ``timm`` package, importable in this process."""
    (tmp_path / "timm").mkdir()
    (tmp_path / "timm" / "__init__.py").write_text(textwrap.dedent(FAKE_TIMM))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "timm", raising=False)
    return tmp_path


def test_hub_names_are_recognised_only_for_known_libraries():
    assert is_hub_name("torchvision:resnet18") and is_hub_name("timm:convnext_atto")
    assert not is_hub_name("resnet18")
    assert not is_hub_name("timm:")
    assert not is_hub_name("os:system")  # an arbitrary module is not a hub


def test_missing_library_names_the_package_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # makes the import fail
    monkeypatch.setitem(sys.modules, "torchvision.models", None)
    with pytest.raises(HubError, match=r"needs the 'torchvision' package.*pip install torchvision"):
        create_model("torchvision:resnet18")


def test_hub_model_is_built_through_the_library_without_weights(fake_timm):
    model = create_model("timm:tinynet", num_classes=7, width=3)
    import timm

    assert timm.calls == [("tinynet", False, 7)]  # pretrained=False forced
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 7)
    assert input_shape(model) == (1, 3, 16, 16)


def test_hub_refuses_downloads_and_unknown_models(fake_timm):
    with pytest.raises(HubError, match=r"pretrained=True would download weights.*--load FILE"):
        create_model("timm:tinynet", pretrained=True)
    with pytest.raises(HubError, match=r"cannot build 'nonet'.*timm.list_models\(\)"):
        create_model("timm:nonet")


def test_builtin_models_know_their_input_size():
    assert input_shape(create_model("vgg16_bn", width=1 / 16)) == (1, 3, 224, 224)
    assert input_shape(create_model("vgg16_bn", width=1 / 16, head="cifar"), batch=4) == (
        4,
        3,
        32,
        32,
    )
    assert input_shape(torch.nn.Linear(2, 2)) is None


def _cli(args: list[str], path: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(path), env.get("PYTHONPATH")) if p)
    command = [sys.executable, "-m", "filterprune", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_cli_trains_a_hub_model_and_its_folder_remembers_it(fake_timm, tmp_path):
    out = tmp_path / "base"
    done = _cli(
        ["train", "--task", "classify", "--model", "timm:tinynet", "--model-arg", "width=4"]
        + ["--steps", "2", "--batch-size", "8", "--image-size", "16", "--out", str(out), "-q"],
        fake_timm,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    info = json.loads((out / "model.json").read_text())
    assert info["model"] == "timm:tinynet"
    assert info["model_args"] == {"width": 4, "num_classes": 10}
    # no --model: inspect rebuilds the architecture from model.json and loads the weights
    done = _cli(["inspect", "--load", str(out)], fake_timm, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "MACs for input (1, 3, 16, 16)" in done.stdout


def test_cli_says_which_library_is_missing(tmp_path):
    # a folder whose 'torchvision' cannot be imported stands for a machine without it
    (tmp_path / "torchvision").mkdir()
    (tmp_path / "torchvision" / "__init__.py").write_text("raise ImportError('not installed')\n")
    done = _cli(["inspect", "--model", "torchvision:resnet18"], tmp_path, tmp_path)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "needs the 'torchvision' package" in lines[0]
    assert "pip install torchvision" in lines[0]


def test_cli_gives_gray_data_to_a_hub_model_under_its_own_keyword(fake_timm, tmp_path):
    # MNIST-format data has one channel: timm takes it as in_chans (not the built-in models'
    # in_channels, which timm's factory refuses)
    from tiny_idx import write_set

    root = write_set(tmp_path / "gray")
    out = tmp_path / "base"
    done = _cli(
        ["train", "--task", "classify", "--model", "timm:tinynet", "--data", str(root)]
        + ["--steps", "2", "--batch-size", "8", "--image-size", "16", "--out", str(out), "-q"],
        fake_timm,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    info = json.loads((out / "model.json").read_text())
    assert info["model_args"] == {"num_classes": 4, "in_chans": 1}
    done = _cli(["eval", "--load", str(out), "--data", str(root)], fake_timm, tmp_path)
    assert done.returncode == 0, done.stderr


def test_cli_says_how_to_give_gray_data_to_a_three_channel_library(tmp_path):
    # torchvision's models have no input-channel argument: one line names the fix, before any
    # model is built (torchvision need not be installed)
    from tiny_idx import write_set

    root = write_set(tmp_path / "gray")
    done = _cli(
        ["train", "--task", "classify", "--model", "torchvision:resnet18", "--data", str(root)]
        + ["--steps", "1", "--out", str(tmp_path / "base")],
        tmp_path,
        tmp_path,
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr, done.stderr
    assert "1-channel images" in lines[-1] and "--data-arg channels=3" in lines[-1]
