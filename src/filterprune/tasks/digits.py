"""scikit-learn's handwritten digits as a tiny RGB image-classification set.

``sklearn.datasets.load_digits`` ships 1797 8x8 grayscale digits (10 classes) inside scikit-learn, so
nothing is downloaded. They are upscaled (bilinear) to ``image_size`` and repeated to 3 channels so that
ordinary RGB CNNs accept them. Needs the ``data`` extra (numpy, scikit-learn).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import TensorDataset

from filterprune.tasks._deps import require

from ..errors import ConfigError

DIGITS_NUM_CLASSES = 10
DIGITS_MEAN = 0.5
DIGITS_STD = 0.5


@dataclass(frozen=True)
class DigitsConfig:
    """How to build the digits datasets.

    Attributes:
        image_size: Side of the square output images in pixels (the source is 8x8).
        val_fraction: Fraction of the 1797 images held out for validation (stratified by class).
        seed: Seed of the train/val split; the same seed always gives the same split.
        normalize: Map pixels from [0, 1] to [-1, 1] with ``(x - 0.5) / 0.5``.
    """

    image_size: int = 32
    val_fraction: float = 0.2
    seed: int = 0
    normalize: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.image_size, int) or self.image_size < 8:
            raise ConfigError(
                f"DigitsConfig.image_size must be an int >= 8 (pixels), got {self.image_size!r}; "
                "use e.g. 32."
            )
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(
                f"DigitsConfig.val_fraction must be in (0, 1), got {self.val_fraction!r}; use e.g. 0.2."
            )


def load_digits_tensors(
    *, image_size: int = 32, normalize: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """All 1797 digits as tensors.

    Args:
        image_size: Output side in pixels.
        normalize: Map [0, 1] to [-1, 1].

    Returns:
        images: float32 ``(1797, 3, image_size, image_size)``, in [0, 1] or [-1, 1].
        labels: int64 ``(1797,)`` in ``0..9``.
    """
    datasets = require("sklearn.datasets", feature="digits data")
    bunch = datasets.load_digits()
    pixels = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8)
    images = torch.nn.functional.interpolate(
        pixels, size=(image_size, image_size), mode="bilinear", align_corners=False
    ).clamp(0.0, 1.0)
    images = images.expand(-1, 3, -1, -1).contiguous()
    if normalize:
        images = (images - DIGITS_MEAN) / DIGITS_STD
    return images, torch.as_tensor(bunch.target, dtype=torch.int64)


def digits_datasets(config: DigitsConfig | None = None) -> tuple[TensorDataset, TensorDataset]:
    """Deterministic stratified train/val split of the digits.

    Args:
        config: Options; defaults to ``DigitsConfig()`` (32x32, 20 % validation, seed 0).

    Returns:
        ``(train, val)`` TensorDatasets yielding ``(image (3, H, W) float32, label int64)``.
    """
    config = config or DigitsConfig()
    model_selection = require("sklearn.model_selection", feature="digits data")
    images, labels = load_digits_tensors(image_size=config.image_size, normalize=config.normalize)
    train_idx, val_idx = model_selection.train_test_split(
        list(range(len(labels))),
        test_size=config.val_fraction,
        random_state=config.seed,
        stratify=labels.numpy(),
    )
    train_idx, val_idx = torch.as_tensor(sorted(train_idx)), torch.as_tensor(sorted(val_idx))
    return (
        TensorDataset(images[train_idx], labels[train_idx]),
        TensorDataset(images[val_idx], labels[val_idx]),
    )
