"""The seed workflows' friction, through the installed ``filterprune`` command in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SMALL = ["--image-size", "32", "--batch-size", "4"]
CARS = ["--data-arg", "num_cars=6", "--data-arg", "views_per_car=2"]


def filterprune(*argv: object, cwd: Path | None = None, ok: bool = True):
    """Run the ``filterprune`` command; returns the completed process."""
    exe = Path(sys.executable).with_name("filterprune")
    head = [str(exe)] if exe.exists() else [sys.executable, "-m", "filterprune"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(
        [*head, *map(str, argv)], capture_output=True, text=True, cwd=cwd, env=env, timeout=600
    )
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def unet_run(tmp_path_factory) -> Path:
    """A U-Net baseline trained with adam, pruned once with Taylor on too little data."""
    root = tmp_path_factory.mktemp("seed")
    filterprune("train", "--task", "segment", "--model", "unet", "--model-arg", "base=4",
                *SMALL, *CARS, "--steps", "2", "--optimizer", "adam", "--lr", "0.005",
                "--out", root / "base", "-q")  # fmt: skip
    proc = filterprune("prune", "--load", root / "base", "--criterion", "taylor",
                       "--ranking-batches", "3", "--limit", "4", "--amount", "0.2",
                       "--finetune-steps", "1", "--max-iterations", "1",
                       "--run-dir", root / "run")  # fmt: skip
    (root / "prune.out").write_text(proc.stdout)
    (root / "prune.err").write_text(proc.stderr)
    return root


def test_prune_inherits_the_training_recipe_and_says_so(unet_run):
    from filterprune.cli.main import build_parser
    from filterprune.cli.prune import optimizer_from

    err = (unet_run / "prune.err").read_text()
    said = "finetuning with adam (the baseline's, model.json) at lr=0.0005 (a tenth of the "
    assert said + "baseline's training rate 0.005; --lr sets it)" in err
    info = json.loads((unet_run / "run" / "model.json").read_text())
    # the run records how it finetuned: the baseline's optimizer at a tenth of its rate
    assert info["training"]["name"] == "adam" and info["training"]["lr"] == 0.005
    assert info["finetuning"]["lr"] == 0.0005 and info["finetuning"]["schedule"] == "constant"
    base = json.loads((unet_run / "base" / "model.json").read_text())
    assert base["training"]["lr"] == 0.005 and base["training"]["schedule"] == "cosine"
    args = build_parser().parse_args(["prune", "--load", str(unet_run), "--lr", "0.001"])
    flags_win = optimizer_from(args, info["training"])
    assert (flags_win.name, flags_win.lr) == ("adam", 0.001)  # the flag overrides one setting


def test_fewer_ranking_batches_than_asked_is_said(unet_run):
    # --limit 4 with --batch-size 4: one batch of data for --ranking-batches 3
    assert "ranked on 1 of the 3 ranking batches asked for" in (unet_run / "prune.err").read_text()
    out = (unet_run / "prune.out").read_text()
    assert "fewer batches than asked: iteration 1: 1 of 3" in out
    table = (unet_run / "run" / "report" / "iterations.md").read_text()
    assert "1 of 3" in table


def test_channel_file_round_trips_through_every_command(unet_run, tmp_path):
    channels = unet_run / "run" / "channels.txt"
    assert len(channels.read_text().split()) == 22
    assert "channels.txt" in filterprune("prune", "--help").stdout
    # the final weights alone, as a seed user would hand them over
    weights = tmp_path / "pruned.safetensors"
    final = next((unet_run / "run").glob("*/weights.safetensors"))
    shutil.copy(sorted((unet_run / "run").glob("iter_*/weights.safetensors"))[-1], weights)
    assert final.exists()
    model = ["--model", "unet", "--model-arg", "base=4"]
    ev = filterprune("eval", "--load", weights, *model, "--task", "segment", *SMALL, *CARS,
                     "--limit", "4", "--channel-txt", channels, "--json")  # fmt: skip
    assert '"params"' in ev.stdout
    ins = filterprune("inspect", "--load", weights, *model, "--channel-txt", channels)
    full = filterprune("inspect", *model)
    narrowed = filterprune("inspect", *model, "--channel-txt", channels)
    count = [p.stdout.strip().splitlines()[-1] for p in (ins, full, narrowed)]
    assert count[0] == count[2] != count[1]  # the channel file narrows the architecture
    rep = filterprune("report", unet_run / "run", "--no-plots", "--channel-txt", channels)
    assert "not needed" in rep.stderr


def test_list_models_and_inspect_show_the_arguments():
    listed = filterprune("inspect", "--list-models").stdout
    unet = listed.split("\nunet\n", 1)[1]
    assert "base=64" in unet and "width=1.0" in unet and "Width of the first level" in unet
    assert "head='imagenet'" in listed.split("\nvgg16_bn\n", 1)[1]
    assert "batch_norm" not in listed  # fixed by the vgg16/vgg16_bn factories
    shown = filterprune("inspect", "--model", "resnet18", "--model-arg", "width=0.125").stdout
    assert "stem='imagenet'" in shown and "resnet18 takes" in shown


def _images(folder: Path, classes=("cat", "dog"), n: int = 3) -> None:
    from PIL import Image

    for label, name in enumerate(classes):
        (folder / name).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (8, 8), (200 * label, 40 * i, 90)).save(folder / name / f"{i}.png")


def test_imagefolder_with_a_test_split(tmp_path):
    _images(tmp_path / "data" / "train")
    _images(tmp_path / "data" / "test")
    proc = filterprune("train", "--task", "classify", "--model", "vgg16_bn",
                       "--model-arg", "width=0.0625", "--model-arg", "head=cifar",
                       "--data", tmp_path / "data", *SMALL, "--steps", "1",
                       "--out", tmp_path / "base", "-q")  # fmt: skip
    assert "saved to" in proc.stdout
    info = (tmp_path / "base" / "model.json").read_text()
    assert '"num_classes": 2' in info


@pytest.mark.parametrize("split", ["val", "valid", "validation", "test"])
def test_every_validation_split_name_is_recognised(tmp_path, split):
    from filterprune.recipes import load_data

    _images(tmp_path / "train")
    _images(tmp_path / split, n=2)
    data = load_data("classify", data=tmp_path, image_size=8)
    assert (len(data.train), len(data.val)) == (6, 4)


def test_an_ambiguous_imagefolder_says_what_was_found(tmp_path):
    _images(tmp_path / "data", classes=("cat", "dog", "test"))
    proc = filterprune("train", "--task", "classify", "--model", "vgg16_bn",
                       "--data", tmp_path / "data", "--steps", "1", "--out", tmp_path / "b",
                       ok=False)  # fmt: skip
    assert proc.returncode == 1
    assert "found split folder test/ but no train/ (folders: cat, dog, test)" in proc.stderr
    assert "expected DIR/train/CLASS/*.png with DIR/val/CLASS/*.png" in proc.stderr


def test_demo_help_names_the_folder_it_writes():
    from filterprune.recipes import DemoConfig

    help_text = filterprune("demo", "--help").stdout
    default = DemoConfig().run_dir
    assert default == Path("runs/demo-segment")
    assert f"filterprune report {default}" in help_text
    assert "runs/demo\n" not in help_text and "runs/demo " not in help_text


def test_a_python_run_is_a_complete_run_folder(tmp_path):
    import torch

    from filterprune.loop import PruneConfig, run_pruning
    from filterprune.models import create_model

    config = PruneConfig(criterion="l1", amount=0.3, finetune=0, max_iterations=1)
    x = torch.randn(1, 3, 32, 32)
    model = create_model("vgg16_bn", width=1 / 16, head="cifar", num_classes=10)
    result = run_pruning(model, x, config=config, run_dir=tmp_path / "py", progress=False)
    ev = filterprune("eval", "--load", tmp_path / "py", "--task", "classify", "--limit", "8",
                     "--json")  # fmt: skip
    params = sum(p.numel() for p in result.model.parameters())
    assert json.loads(ev.stdout)["params"] == params
    # a model filterprune cannot rebuild from a file: a note says what to pass
    custom = create_model("vgg16_bn", width=1 / 16, head="cifar", num_classes=10)
    custom.classifier[3] = torch.nn.Linear(custom.classifier[3].in_features, 4)
    run_pruning(custom, x, config=config, run_dir=tmp_path / "custom", progress=False)
    note = (tmp_path / "custom" / "MODEL.txt").read_text()
    assert (
        "filterprune.models.vgg.VGG" in note and "--model filterprune.models.vgg:FUNCTION" in note
    )
    failed = filterprune("eval", "--load", tmp_path / "custom", "--task", "classify", ok=False)
    assert (
        "--model is required" in failed.stderr and "MODEL.txt says which factory" in failed.stderr
    )


MYNETS = """
import torch
from filterprune.models import create_model


class OutConv(torch.nn.Module):  # the 1x1 output conv inside a wrapper, as in public U-Nets
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = torch.nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        return self.conv(x)


def unet(base=4):
    model = create_model("unet", base=base)
    model.outc = OutConv(base, 1)
    return model
"""


def test_own_factory_from_the_current_folder_or_a_file(tmp_path):
    (tmp_path / "mynets.py").write_text(MYNETS)
    trust = ["--trust-model-code"] if "--trust-model-code" in filterprune(
        "inspect", "--help").stdout else []  # fmt: skip
    by_module = filterprune("inspect", "--model", "mynets:unet", *trust, cwd=tmp_path)
    by_file = filterprune("inspect", "--model", "./mynets.py:unet", *trust, cwd=tmp_path)
    assert by_module.stdout.splitlines()[-1] == by_file.stdout.splitlines()[-1]
    assert "outc.conv" in by_module.stdout
    # the seed's channel file: 22 lines, or 23 with the head's; a wrong count lists the lines
    widths = [3, 3, 6, 6, 12, 12, 24, 24, 48, 48, 24, 24, 24, 12, 12, 12, 6, 6, 6, 3, 3, 3]
    (tmp_path / "c22.txt").write_text("\n".join(map(str, widths)))
    (tmp_path / "c23.txt").write_text("\n".join(map(str, [*widths, 1])))
    (tmp_path / "c5.txt").write_text("4\n4\n4\n4\n4\n")
    model = ["--model", "mynets:unet", *trust]
    counts = [
        filterprune("inspect", *model, "--channel-txt", f, cwd=tmp_path).stdout.splitlines()[-1]
        for f in ("c22.txt", "c23.txt")
    ]
    assert counts[0] == counts[1] != by_module.stdout.splitlines()[-1]
    wrong = filterprune("inspect", *model, "--channel-txt", "c5.txt", cwd=tmp_path, ok=False)
    assert "has 5 channel counts but the model has 22 conv layers" in wrong.stderr
    assert "line 1 inc.0 (4 channels in the full model)" in wrong.stderr
    assert "output head outc.conv (1) keeps its width" in wrong.stderr
    # train from the folder: model.json names the factory so that any folder finds it again
    filterprune("train", "--task", "segment", *model, *SMALL, *CARS, "--steps", "1", "--out",
                "base", "-q", cwd=tmp_path)  # fmt: skip
    info = json.loads((tmp_path / "base" / "model.json").read_text())
    assert info["model"] == f"{(tmp_path / 'mynets.py').resolve()}:unet"
    # later commands, from another folder, reuse the remembered factory only on an explicit opt-in
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    base = tmp_path / "base"
    refused = filterprune("eval", "--load", base, cwd=elsewhere, ok=False)
    assert refused.returncode == 1 and "add --trust-model-code" in refused.stderr
    assert "Traceback" not in refused.stderr
    trusted = filterprune("eval", "--load", base, "--trust-model-code", cwd=elsewhere)
    assert f"importing the model factory '{info['model']}'" in trusted.stderr
    filterprune("prune", "--load", base, "--trust-model-code", "--amount", "0.2",
                "--finetune-steps", "1", "--final-finetune", "0", "--max-iterations", "1",
                "--run-dir", "run", "-q", cwd=elsewhere)  # fmt: skip
    again = filterprune("eval", "--load", "run", "--trust-model-code", "--json", cwd=elsewhere)
    assert (
        json.loads(again.stdout)["params"]
        < json.loads(
            filterprune(
                "eval", "--load", base, "--trust-model-code", "--json", cwd=elsewhere
            ).stdout
        )["params"]
    )


def test_own_model_that_does_not_fit_the_data_is_the_users_error_not_a_bug(tmp_path):
    (tmp_path / "gray.py").write_text(
        "from torch import nn\n\n\ndef build(num_classes=10):\n"
        "    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.LazyLinear(num_classes))\n"
    )
    proc = filterprune("train", "--task", "classify", "--model", "gray:build",
                       "--trust-model-code", "--image-size", "8", "--limit", "40", "--steps", "1",
                       "--out", "base", cwd=tmp_path, ok=False)  # fmt: skip
    assert proc.returncode == 1 and "internal error" not in proc.stderr, proc.stderr
    assert "--model gray:build fails on the data's input of shape (1, 3, 8, 8)" in proc.stderr
    assert "expected input[1, 3, 8, 8] to have 1 channels" in proc.stderr
    assert not (tmp_path / "base").exists()
