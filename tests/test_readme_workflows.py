"""The README's "Coming from another pruning project" recipes, run as written on tiny data.

Every code block of that section is taken from README.md itself. Only sizes change, through
the documented flags and arguments (see ``TINY``); the data folders are tiny copies of the
layouts the README names (Carvana, an ImageFolder with train/ and test/).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Coming from another pruning project"

# (pattern, replacement): model widths, image sizes, budgets and iterations made tiny
TINY = [
    (r"base=(16|64)", "base=4"),
    (r"width=0\.25", "width=0.0625"),
    (r"--epochs \d+", "--epochs 1"),
    (r"--image-size 64", "--image-size 32"),
    (r"--ranking-batches 10", "--ranking-batches 1"),
    (r"--amount 32", "--amount 2"),
    (r"--finetune-steps 30", "--finetune-steps 1"),
    (r"--max-iterations 4", "--max-iterations 1"),
    (r"--run-dir runs/seed", "--max-iterations 1 --finetune-steps 1 --run-dir runs/seed"),
    (r"--latency\b(?!-)", "--latency --latency-repeats 3"),
    (r"--model unet --task", "--model unet --model-arg base=4 --task"),
    (r"steps=300", "steps=2"),
    (r"image_size=32\)", "image_size=32, limit=48)"),
    (r"max_iterations=3", "max_iterations=1"),
]


def tiny(text: str) -> str:
    for pattern, replacement in TINY:
        text = re.sub(pattern, replacement, text)
    return text


def sections() -> dict[str, list[tuple[str, str]]]:
    """``### title`` -> [(language, code)] of the README's seed section."""
    text = README.read_text().split(SECTION, 1)[1].split("\n## ", 1)[0]
    out = {}
    for part in text.split("\n### ")[1:]:
        title, body = part.split("\n", 1)
        out[title.strip()] = re.findall(r"```(\w+)\n(.*?)```", body, re.S)
    return out


def run_bash(code: str, cwd: Path) -> None:
    exe = Path(sys.executable).with_name("filterprune")
    head = [str(exe)] if exe.exists() else [sys.executable, "-m", "filterprune"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for line in code.replace("\\\n", " ").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        argv = shlex.split(tiny(line))
        assert argv[0] == "filterprune", line
        proc = subprocess.run(
            [*head, *argv[1:]], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
        )
        assert proc.returncode == 0, f"{line}\n{proc.stderr}"


def run_python(code: str, cwd: Path, monkeypatch) -> None:
    monkeypatch.chdir(cwd)
    exec(compile(tiny(code), str(README), "exec"), {"__name__": "__readme__"})


def _carvana(root: Path) -> None:
    from PIL import Image

    (root / "train").mkdir(parents=True)
    (root / "train_masks").mkdir()
    for car in range(4):
        for view in (1, 2):
            name = f"car{car}_{view:02d}"
            Image.new("RGB", (40, 40), (60 * car, 30 * view, 90)).save(
                root / "train" / f"{name}.jpg"
            )
            mask = Image.new("L", (40, 40), 0)
            mask.paste(255, (10, 10, 30, 30))
            mask.save(root / "train_masks" / f"{name}_mask.gif")


def _dogs_vs_cats(root: Path) -> None:
    from PIL import Image

    for split, n in (("train", 6), ("test", 3)):
        for label, name in enumerate(("cats", "dogs")):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                color = (200 * label, 25 * i, 120)
                Image.new("RGB", (48, 48), color).save(root / split / name / f"{i}.jpg")


BLOCKS = sections()


def test_the_readme_has_one_section_per_seed_workflow():
    assert list(BLOCKS) == [
        "From a Taylor-pruned U-Net (Carvana, `channels.txt`)",
        "From a Keras KMeans pruner (Ridurre)",
        "From a VGG16 Taylor script (dogs vs. cats)",
        "From prunable layers (PConv2d / PLinear)",
    ]


@pytest.mark.slow
def test_taylor_unet_workflow(tmp_path, monkeypatch):
    from filterprune.loop import RunDir

    _carvana(tmp_path / "data" / "carvana")
    (train, seed, python) = BLOCKS["From a Taylor-pruned U-Net (Carvana, `channels.txt`)"]
    run_bash(train[1], tmp_path)
    run = tmp_path / "runs" / "unet-pruned"
    lines = (run / "channels.txt").read_text().split()
    assert len(lines) == 22
    # a seed user's checkpoint: weights alone, and a channel file with the head's line (1)
    shutil.copy(RunDir(run).final_checkpoint() / "weights.safetensors",
                tmp_path / "seed_unet.safetensors")  # fmt: skip
    (tmp_path / "seed_channels.txt").write_text("\n".join([*lines, "1"]) + "\n")
    run_bash(seed[1], tmp_path)
    assert (tmp_path / "runs" / "seed" / "channels.txt").read_text().split()[:1]
    run_python(python[1], tmp_path, monkeypatch)


@pytest.mark.slow
def test_kmeans_workflow(tmp_path, monkeypatch):
    (python,) = BLOCKS["From a Keras KMeans pruner (Ridurre)"]
    pytest.importorskip("sklearn")
    run_python(python[1], tmp_path, monkeypatch)
    run_bash("filterprune eval --load runs/kmeans --task classify --limit 16", tmp_path)


@pytest.mark.slow
def test_vgg_taylor_workflow(tmp_path):
    _dogs_vs_cats(tmp_path / "data" / "dogs-vs-cats")
    (bash,) = BLOCKS["From a VGG16 Taylor script (dogs vs. cats)"]
    run_bash(bash[1], tmp_path)
    assert (tmp_path / "runs" / "vgg-pruned" / "report" / "summary.md").is_file()


def test_prunable_layers_workflow(tmp_path, monkeypatch, capsys):
    (python,) = BLOCKS["From prunable layers (PConv2d / PLinear)"]
    run_python(python[1], tmp_path, monkeypatch)
    out = capsys.readouterr().out
    assert "'7'" in out and "torch.Size([16, 10])" in out  # the hidden Linear was pruned
