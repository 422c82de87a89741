"""scikit-learn digits as 32x32 RGB."""

import sys

import pytest
import torch

from filterprune.tasks import DigitsConfig, digits_datasets, load_digits_tensors

pytest.importorskip("sklearn")


def test_tensors_shape_and_range():
    images, labels = load_digits_tensors(image_size=32, normalize=False)
    assert images.shape == (1797, 3, 32, 32) and images.dtype == torch.float32
    assert images.min() >= 0.0 and images.max() <= 1.0 and images.max() > 0.9
    assert torch.equal(images[:, 0], images[:, 2])  # grey repeated to RGB
    assert labels.dtype == torch.int64 and set(labels.tolist()) == set(range(10))
    normed, _ = load_digits_tensors(image_size=16)
    assert normed.shape[-2:] == (16, 16)
    assert normed.min() >= -1.0 and normed.max() <= 1.0 and normed.min() < -0.9


def test_stratified_deterministic_split():
    train, val = digits_datasets(DigitsConfig(seed=0))
    assert len(train) + len(val) == 1797 and len(val) == 360
    image, label = train[0]
    assert image.shape == (3, 32, 32) and label.dtype == torch.int64
    val_counts = torch.bincount(val.tensors[1], minlength=10)
    assert val_counts.min() >= 35 and val_counts.max() <= 37  # ~20 % of ~180 per class
    again, _ = digits_datasets(DigitsConfig(seed=0))
    assert torch.equal(train.tensors[0], again.tensors[0])
    other, _ = digits_datasets(DigitsConfig(seed=1))
    assert not torch.equal(train.tensors[1], other.tensors[1])


def test_config_errors_and_missing_extra(monkeypatch):
    with pytest.raises(ValueError, match="val_fraction"):
        DigitsConfig(val_fraction=1.5)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"pip install filterprune\[data\]"):
        load_digits_tensors()
