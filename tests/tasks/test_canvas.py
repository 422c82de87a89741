"""Fashion-MNIST canvases: exact masks, boxes from the masks, seeds, splits, and --data plumbing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from filterprune.errors import DataError
from filterprune.recipes.data import load_data
from filterprune.recipes.errors import RecipeError
from filterprune.tasks import CanvasConfig, canvas_datasets, draw_canvas

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tiny_idx import write_items  # noqa: E402


def pool(n: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.zeros(n, 28, 28, dtype=torch.uint8)
    for i in range(n):
        images[i, 2 : 12 + i, 5 : 20 + i % 3] = 200 + i
    return images, torch.arange(n) % 10


@pytest.mark.parametrize("seed", range(6))
def test_masks_are_exactly_the_changed_pixels_and_boxes_bound_them(seed: int) -> None:
    config = CanvasConfig(size=32, backgrounds=("flat",), channels=1, max_items=6, min_visible=0.3)
    canvas = draw_canvas(*pool(), config, torch.Generator().manual_seed(seed))
    image, masks = canvas.image[0], canvas.masks
    union = masks.any(0)
    assert masks.sum(0).max() <= 1  # each pixel belongs to at most one item
    background = image[~union]
    assert background.numel() and torch.all(background == background[0])  # one flat colour
    assert torch.equal(image != background[0], union)  # an item shows exactly where its mask is
    for mask, box in zip(masks, canvas.boxes, strict=True):
        rows, cols = torch.where(mask)
        want = [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
        assert box.tolist() == [float(v) for v in want]
        assert mask.any()  # a kept item is visible
    assert len(canvas.labels) == len(masks) and 1 <= len(masks) <= 6
    assert image.min() >= 0 and image.max() <= 1


def test_each_background_kind_draws_and_a_seed_repeats_its_canvas() -> None:
    images, labels = pool()
    for kind in ("noise", "gradient", "texture", "flat"):
        config = CanvasConfig(size=24, backgrounds=(kind,), max_items=3)
        first = draw_canvas(images, labels, config, torch.Generator().manual_seed(7))
        again = draw_canvas(images, labels, config, torch.Generator().manual_seed(7))
        other = draw_canvas(images, labels, config, torch.Generator().manual_seed(8))
        assert first.image.shape == (3, 24, 24)
        assert torch.equal(first.image, again.image) and torch.equal(first.boxes, again.boxes)
        assert not torch.equal(first.image, other.image)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("size", 8),
        ("max_items", 0),
        ("min_scale", 0.0),
        ("backgrounds", ("plaid",)),
        ("channels", 2),
    ],
)
def test_config_errors_name_the_field(field: str, value: object) -> None:
    with pytest.raises(DataError, match=f"CanvasConfig.{field}"):
        CanvasConfig(**{field: value})


def test_splits_draw_from_disjoint_images_and_test_from_t10k_only(tmp_path: Path) -> None:
    root = write_items(tmp_path / "items")
    config = CanvasConfig(size=24, max_items=4)
    train, val, test = canvas_datasets(
        root, kind="detect", config=config, num_train=12, num_val=6, num_test=6, val_fraction=0.3
    )

    def classes(dataset) -> set[int]:
        return {int(c) for i in range(len(dataset)) for c in dataset.canvas(i).labels}

    seen_train, seen_val, seen_test = classes(train), classes(val), classes(test)
    assert seen_train and seen_val and seen_test
    assert max(seen_train | seen_val) < 30 <= min(seen_test)  # test items only from t10k
    assert not seen_train & seen_val  # training and validation items are different images
    image, target = train[0]
    assert image.shape == (3, 24, 24) and target.shape == (4, 5)
    rows = target[target[:, 0] >= 0]
    assert len(rows) == len(train.canvas(0).labels)
    assert torch.allclose(rows[:, 1:] * 24, train.canvas(0).boxes)
    assert torch.all(target[len(rows) :, 0] == -1)


def test_load_data_segment_and_detect_canvases(tmp_path: Path) -> None:
    root = str(write_items(tmp_path / "items"))
    args = {"root": root, "train_canvases": 8, "val_canvases": 4, "test_canvases": 3}
    seg = load_data("segment", data="fashion-mnist-seg", image_size=32, data_args=args)
    image, mask = seg.val[0]
    assert image.shape == (3, 32, 32) and mask.shape == (1, 32, 32)
    assert set(mask.unique().tolist()) <= {0.0, 1.0} and mask.sum() > 0
    assert len(seg.train) == 8 and len(seg.val) == 4
    det = load_data("detect", data="fashion-mnist-det", image_size=32, data_args=args, split="test")
    assert len(det.val) == 3  # the t10k canvases
    assert det.settings["data"] == "fashion-mnist-det"
    with pytest.raises(RecipeError, match="for --task detect, not segment"):
        load_data("segment", data="fashion-mnist-det", data_args=args)
    with pytest.raises(RecipeError, match="not an option of --data fashion-mnist-seg"):
        load_data("segment", data="fashion-mnist-seg", data_args={**args, "num_cars": 3})


def test_a_missing_folder_says_how_to_get_fashion_mnist(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FILTERPRUNE_FASHION_MNIST", str(tmp_path / "absent"))
    monkeypatch.setattr("filterprune.tasks.idx.FASHION_MNIST_DIRS", (str(tmp_path / "none"),))
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        load_data("detect", data="fashion-mnist-det")
