"""eval --split test reads the held-out test split; train and prune never do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from filterprune.cli import main
from filterprune.recipes import RecipeError, load_data
from tiny_idx import write_set


def _image_folder(root: Path, splits: dict[str, int]) -> Path:
    from PIL import Image

    for split, n in splits.items():
        for label, name in enumerate(("cats", "dogs")):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (8, 8), (200 * label, 20 * i, 9)).save(
                    root / split / name / f"{i}.png"
                )
    return root


def test_the_idx_test_split_is_the_t10k_file_and_only_eval_reads_it(tmp_path):
    root = write_set(tmp_path / "set", n_test=12)
    test = load_data("classify", data=root, image_size=8, split="test")
    assert (
        len(test.val) == 12
        and len(test.train) + len(load_data("classify", data=root, image_size=8).val) == 40
    )
    for path in root.glob("t10k-*"):
        path.unlink()  # what train and prune load does not need it
    assert len(load_data("classify", data=root, image_size=8).val) == 8
    with pytest.raises(RecipeError, match="--split test: .* has no t10k test file"):
        load_data("classify", data=root, image_size=8, split="test")


def test_a_folder_test_split_is_its_test_folder(tmp_path):
    root = _image_folder(tmp_path / "pets", {"train": 4, "val": 2, "test": 3})
    assert len(load_data("classify", data=root, image_size=8).val) == 4  # val/ validates
    assert len(load_data("classify", data=root, image_size=8, split="test").val) == 6
    bare = _image_folder(tmp_path / "bare", {"train": 4})
    with pytest.raises(RecipeError, match="has no test/ folder"):
        load_data("classify", data=bare, image_size=8, split="test")
    with pytest.raises(RecipeError, match="--split test: --data builtin has no test split"):
        load_data("classify", split="test")


def test_cli_eval_split_test(tmp_path, capsys):
    root = write_set(tmp_path / "set", n_train=48, n_test=12)
    out = tmp_path / "base"
    assert main(["train", "--task", "classify", "--model", "resnet18", "--model-arg", "width=0.0625",
                 "--model-arg", "stem=cifar", "--data", str(root), "--image-size", "8",
                 "--steps", "2", "--batch-size", "8", "--out", str(out), "-q"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["eval", "--load", str(out), "--split", "test", "--json", "-q"]) == 0
    assert "accuracy" in json.loads(capsys.readouterr().out)["metrics"]
    assert main(["eval", "--load", str(out), "--split", "test", "--data", "builtin", "-q"]) != 0
    assert "--split test: --data builtin has no test split" in capsys.readouterr().err
