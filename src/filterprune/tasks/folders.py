"""Datasets read from folders: ``root/CLASS/*.png`` classification and the Carvana mask layout.

Both read with Pillow (the ``data`` extra) and yield ``(image, target)`` pairs:

* :class:`ImageFolderDataset`: ``(float32 (3, H, W) in [0, 1], int class index)``.
* :class:`CarvanaDataset`: ``(float32 (3, H, W) in [0, 1], float32 (1, H, W) mask in {0, 1})``.
  Carvana: https://www.kaggle.com/c/carvana-image-masking-challenge
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from filterprune.tasks._images import (
    IMAGE_SUFFIXES,
    Size,
    as_hw,
    image_size_of,
    load_mask,
    load_rgb,
)
from filterprune.tasks.splits import split_by_object_id

from ..errors import DataError, MissingFileError

__all__ = ["CarvanaDataset", "ImageFolderDataset", "split_by_object_id"]

MASK_SUFFIXES = (".gif", ".png")


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _check_dir(path: Path, *, option: str, owner: str) -> None:
    if not path.is_dir():
        what = "is not a folder" if path.exists() else "does not exist"
        raise MissingFileError(
            f"{owner}: {option} {str(path)!r} {what}; pass the folder that holds the images."
        )


def _maybe_flip(*tensors: torch.Tensor, enabled: bool) -> tuple[torch.Tensor, ...]:
    """Flip all tensors along the width axis together, with probability 0.5 when enabled."""
    if enabled and torch.rand(()) < 0.5:
        return tuple(t.flip(-1) for t in tensors)
    return tensors


class ImageFolderDataset(Dataset):
    """Images in ``root/CLASS_NAME/*.png|jpg|jpeg``; classes are the sorted sub-folder names.

    Args:
        root: Folder with one sub-folder per class.
        image_size: Output size, an int (square) or ``(height, width)``; images are resized bilinearly.
        augment: Random horizontal flip with probability 0.5.

    Attributes:
        classes: Sorted class names; ``classes[i]`` is label ``i``.
        samples: ``(path, label)`` for every image, sorted by class then file name.

    Raises:
        FileNotFoundError: ``root`` is missing.
        ValueError: ``root`` has no class folders, or a class folder holds no images.
    """

    def __init__(self, root: str | Path, *, image_size: Size, augment: bool = False) -> None:
        self.root = Path(root)
        self.size_hw = as_hw(image_size, option="ImageFolderDataset image_size")
        self.augment = augment
        _check_dir(self.root, option="root", owner="ImageFolderDataset")
        self.classes = sorted(p.name for p in self.root.iterdir() if p.is_dir())
        if not self.classes:
            raise DataError(
                f"ImageFolderDataset: root {str(self.root)!r} is empty (no class sub-folders); "
                "expected root/CLASS_NAME/image.png with one sub-folder per class."
            )
        self.samples: list[tuple[Path, int]] = []
        for label, name in enumerate(self.classes):
            files = _image_files(self.root / name)
            if not files:
                raise DataError(
                    f"ImageFolderDataset: class folder {str(self.root / name)!r} holds no images "
                    f"(looked for {', '.join(IMAGE_SUFFIXES)}); add images or remove the folder."
                )
            self.samples.extend((path, label) for path in files)

    @property
    def class_to_idx(self) -> dict[str, int]:
        """Class name to label."""
        return {name: i for i, name in enumerate(self.classes)}

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        image = load_rgb(path, size_hw=self.size_hw, owner="ImageFolderDataset")
        (image,) = _maybe_flip(image, enabled=self.augment)
        return image, label


class CarvanaDataset(Dataset):
    """Carvana layout: ``images_dir/ID.jpg`` with ``masks_dir/ID_mask.gif`` (or ``.png``).

    ``ID`` is ``CARID_VIEW``; use ``split_by_object_id(dataset.ids, ...)`` to split by car.

    Args:
        images_dir: Folder with the images (``.jpg``, ``.jpeg`` or ``.png``).
        masks_dir: Folder with the masks ``ID_mask.gif`` / ``ID_mask.png`` (0/1 or 0/255 pixels).
        scale: Resize factor applied to each image's own size (e.g. 0.25 for 1918x1280 Carvana);
            ``None`` or 1.0 keeps the size.
        image_size: Fixed output size instead of ``scale``: an int (square) or ``(height, width)``.
        augment: Random horizontal flip (image and mask together) with probability 0.5.
        resize_masks: Resize a mask whose size differs from its image's (nearest neighbour);
            by default such a pair is an error naming both files.

    Attributes:
        ids: Image names without suffix, sorted.

    Raises:
        FileNotFoundError: A folder is missing, or an image has no mask (the message names it).
        ValueError: No images, or both ``image_size`` and a ``scale`` other than 1.0 are set.
    """

    def __init__(
        self,
        images_dir: str | Path,
        masks_dir: str | Path,
        *,
        scale: float | None = None,
        image_size: Size | None = None,
        augment: bool = False,
        resize_masks: bool = False,
    ) -> None:
        owner = "CarvanaDataset"
        self.resize_masks = resize_masks
        if scale not in (None, 1.0) and image_size is not None:
            raise DataError(
                f"{owner}: pass scale or image_size, not both (got {scale=}, {image_size=})."
            )
        if scale is not None and not 0.0 < scale <= 1.0:
            raise DataError(f"{owner}: scale must be in (0, 1], got {scale!r}; use e.g. scale=0.5.")
        self.size_hw = (
            None if image_size is None else as_hw(image_size, option=f"{owner} image_size")
        )
        self.scale = 1.0 if scale is None or self.size_hw is not None else float(scale)
        self.augment = augment
        self.images_dir, self.masks_dir = Path(images_dir), Path(masks_dir)
        _check_dir(self.images_dir, option="images_dir", owner=owner)
        _check_dir(self.masks_dir, option="masks_dir", owner=owner)
        images = _image_files(self.images_dir)
        if not images:
            raise DataError(
                f"{owner}: images_dir {str(self.images_dir)!r} holds no images "
                f"(looked for {', '.join(IMAGE_SUFFIXES)})."
            )
        self.pairs: list[tuple[Path, Path]] = [(image, self._mask_for(image)) for image in images]
        self.ids = [image.stem for image, _ in self.pairs]

    def _mask_for(self, image: Path) -> Path:
        for suffix in MASK_SUFFIXES:
            candidate = self.masks_dir / f"{image.stem}_mask{suffix}"
            if candidate.is_file():
                return candidate
        raise MissingFileError(
            f"CarvanaDataset: image {str(image)!r} has no mask; expected "
            f"{str(self.masks_dir / (image.stem + '_mask.gif'))!r} (or .png). "
            "Add the mask or remove the image."
        )

    def _output_hw(self, image: Path) -> tuple[int, int] | None:
        if self.size_hw is not None:
            return self.size_hw
        if self.scale == 1.0:
            return None
        height, width = image_size_of(image, owner="CarvanaDataset")
        return max(1, int(height * self.scale)), max(1, int(width * self.scale))

    def _check_sizes(self, image: Path, mask: Path) -> None:
        owner = "CarvanaDataset"
        (ih, iw), (mh, mw) = image_size_of(image, owner=owner), image_size_of(mask, owner=owner)
        if (ih, iw) != (mh, mw):
            raise DataError(
                f"{owner}: mask {str(mask)!r} is {mw}x{mh} pixels but its image {str(image)!r} is "
                f"{iw}x{ih}; fix the mask, or resize masks to their images with --resize-masks "
                "(Python: resize_masks=True)"
            )

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_path, mask_path = self.pairs[index]
        if not self.resize_masks:
            self._check_sizes(image_path, mask_path)
        size_hw = self._output_hw(image_path)
        image = load_rgb(image_path, size_hw=size_hw, owner="CarvanaDataset")
        mask = load_mask(mask_path, size_hw=image.shape[-2:], owner="CarvanaDataset")
        image, mask = _maybe_flip(image, mask, enabled=self.augment)
        return image, mask
