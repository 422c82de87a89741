"""Synthetic Carvana-like data: determinism, binary non-trivial masks, car identities, disk layout."""

import time

import pytest
import torch

from filterprune.tasks import (
    CarvanaDataset,
    SyntheticCarsConfig,
    make_synthetic_cars,
    split_by_object_id,
    write_carvana_layout,
)

SMALL = SyntheticCarsConfig(num_cars=6, views_per_car=4, image_size=48, seed=3)


def test_shapes_ranges_and_ids():
    data = make_synthetic_cars(SMALL)
    assert data.images.shape == (24, 3, 48, 48) and data.images.dtype == torch.float32
    assert data.masks.shape == (24, 1, 48, 48) and data.masks.dtype == torch.float32
    assert data.images.min() >= 0.0 and data.images.max() <= 1.0
    assert torch.equal(data.object_ids, torch.arange(6).repeat_interleave(4))
    assert data.names[:2] == ["car00000_00", "car00000_01"] and data.names[-1] == "car00005_03"


def test_same_seed_identical_other_seed_differs():
    a, b = make_synthetic_cars(SMALL), make_synthetic_cars(SMALL)
    assert torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks)
    c = make_synthetic_cars(SyntheticCarsConfig(num_cars=6, views_per_car=4, image_size=48, seed=4))
    assert not torch.equal(a.masks, c.masks)
    assert (a.images - c.images).abs().mean() > 0.05


def test_masks_binary_and_non_trivial_on_default_set():
    start = time.perf_counter()
    data = make_synthetic_cars()  # 512 images of 64x64
    assert time.perf_counter() - start < 10.0
    assert data.images.shape == (512, 3, 64, 64)
    assert set(data.masks.unique().tolist()) == {0.0, 1.0}
    fraction = data.masks.mean(dim=(1, 2, 3))
    assert fraction.min() >= 0.05 and fraction.max() <= 0.60


def test_views_of_one_car_differ_and_car_is_visible():
    data = make_synthetic_cars(SMALL)
    views = data.masks[data.object_ids == 0]
    assert not torch.equal(views[0], views[1])  # different pose
    # The car differs in colour from its surroundings (mean over the image set).
    inside = (data.images * data.masks).sum((2, 3)) / data.masks.sum((2, 3))
    outside = (data.images * (1 - data.masks)).sum((2, 3)) / (1 - data.masks).sum((2, 3))
    assert (inside - outside).abs().amax(dim=1).mean() > 0.15


def test_config_validation():
    with pytest.raises(ValueError, match="image_size"):
        SyntheticCarsConfig(image_size=8)
    with pytest.raises(ValueError, match="num_cars"):
        SyntheticCarsConfig(num_cars=0)


@pytest.mark.parametrize("mask_format", ["gif", "png"])
def test_carvana_layout_round_trip(tmp_path, mask_format):
    data = make_synthetic_cars(SyntheticCarsConfig(num_cars=3, views_per_car=2, image_size=32))
    root = write_carvana_layout(tmp_path, data, mask_format=mask_format)
    assert (root / "train" / "car00001_00.jpg").is_file()
    assert (root / "train_masks" / f"car00001_00_mask.{mask_format}").is_file()
    dataset = CarvanaDataset(root / "train", root / "train_masks")
    assert dataset.ids == data.names
    for i in range(len(dataset)):
        image, mask = dataset[i]
        assert torch.equal(mask, data.masks[i])  # masks are lossless
        assert (image - data.images[i]).abs().mean() < 0.05  # JPEG is close
    train, val = split_by_object_id(dataset.ids, val_fraction=0.34, seed=0)
    assert {dataset.ids[i][:8] for i in train}.isdisjoint(dataset.ids[i][:8] for i in val)
