"""MNIST-format (IDX) image classification sets: MNIST, Fashion-MNIST, KMNIST, EMNIST.

The IDX format (http://yann.lecun.com/exdb/mnist/, "file formats") is a 4-byte magic number
``0x00 0x00 TYPE NDIM``, then ``NDIM`` big-endian uint32 sizes, then the values in C order.
Files may be gzipped (detected from their first bytes, not their name). A folder holds a set when it
has ``*train*images*`` / ``*train*labels*`` files and, optionally, ``*t10k*``/``*test*`` ones:

* ``train-images-idx3-ubyte.gz`` ``(N, 28, 28)`` uint8 pixels and ``train-labels-idx1-ubyte.gz``
  ``(N,)`` uint8 labels; ``t10k-...`` for the test split (names as MNIST and Fashion-MNIST ship them;
  EMNIST's ``emnist-balanced-train-images-idx3-ubyte.gz`` also matches).

``idx_datasets`` splits the training file into train / validation (``val_fraction``, seeded) and
keeps the test file apart, so a loop that selects on validation never sees the test split.
Pixels are kept as uint8 in memory; each item is converted when it is read: scaled to [0, 1],
normalised to [-1, 1], padded (or resized) to ``image_size`` and repeated to ``channels``.

Debian and Ubuntu ship Fashion-MNIST as ``dataset-fashion-mnist`` (``apt-get install
dataset-fashion-mnist``), installed under ``/usr/share/datasets/fashion-mnist``; ``--data
fashion-mnist`` finds it there.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn import functional as F
from torch.utils.data import Dataset

from ..errors import DataError

__all__ = [
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DIRS",
    "IDXConfig",
    "IDXDataset",
    "IDXFormatError",
    "find_idx_files",
    "idx_datasets",
    "read_idx",
    "resolve_idx_root",
]

#: Where ``--data fashion-mnist`` looks, in order (the Debian package's folder first).
FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist",)
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
#: Environment variable that names a Fashion-MNIST folder, searched before FASHION_MNIST_DIRS.
FASHION_MNIST_ENV = "FILTERPRUNE_FASHION_MNIST"

# IDX type byte -> (torch dtype, bytes per value)
_TYPES = {
    0x08: (torch.uint8, 1),
    0x09: (torch.int8, 1),
    0x0B: (torch.int16, 2),
    0x0C: (torch.int32, 4),
    0x0D: (torch.float32, 4),
    0x0E: (torch.float64, 8),
}
_MAX_BYTES = 1 << 32  # 4 GiB: far above any MNIST-format set; refuses absurd headers
RESIZE_MODES = ("pad", "bilinear")


class IDXFormatError(DataError):
    """An IDX file or folder is malformed; the message names the file, the field and the fix."""


def _fail(path: Path, field: str, problem: str, fix: str) -> IDXFormatError:
    return IDXFormatError(f"IDX file {str(path)!r}: {field}: {problem}; {fix}")


def _read_bytes(path: Path) -> bytes:
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as err:
        raise IDXFormatError(
            f"IDX file {str(path)!r}: cannot be read ({err.strerror or err}); check the path "
            "and its permissions"
        ) from err
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        stream = gzip.GzipFile(fileobj=io.BytesIO(raw))
        data = stream.read(_MAX_BYTES + 1)
    except (OSError, EOFError, zlib.error) as err:
        raise _fail(
            path, "gzip stream", f"corrupt or truncated ({err})", "download or copy it again"
        ) from err
    if len(data) > _MAX_BYTES:
        raise _fail(
            path, "size", f"decompresses to more than {_MAX_BYTES} bytes", "use a real IDX file"
        )
    return data


def read_idx(path: str | Path) -> torch.Tensor:
    """Read one IDX file (gzipped or not) into a tensor of its stored type and shape.

    Args:
        path: The file, e.g. ``train-images-idx3-ubyte.gz``.

    Returns:
        e.g. uint8 ``(60000, 28, 28)`` for images, uint8 ``(60000,)`` for labels.

    Raises:
        IDXFormatError: Unreadable file, bad magic number, unknown type, or a size that does not
            match the data; the message names the file and the field.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise _fail(path, "header", f"only {len(raw)} bytes", "the file is empty or truncated")
    zero, type_code, ndim = int.from_bytes(raw[:2], "big"), raw[2], raw[3]
    if zero != 0:
        raise _fail(
            path,
            "magic number",
            f"starts with {raw[:4].hex()} instead of 0000TTNN",
            "this is not an IDX file (MNIST format); pass the *-ubyte or *-ubyte.gz files",
        )
    if type_code not in _TYPES:
        known = ", ".join(f"0x{c:02X}" for c in _TYPES)
        raise _fail(path, "type byte", f"0x{type_code:02X} is unknown (known: {known})", "fix it")
    if not 1 <= ndim <= 4:
        raise _fail(path, "dimension count", f"{ndim}", "need 1 (labels) to 4 dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise _fail(path, "sizes", "header is truncated", "download or copy the file again")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype, width = _TYPES[type_code]
    expected = math.prod(shape) * width
    if len(raw) - header != expected:
        raise _fail(
            path,
            "data length",
            f"the header declares shape {shape} ({expected} bytes of data) but the file holds "
            f"{len(raw) - header}",
            "the file is truncated or corrupt; download or copy it again",
        )
    values = torch.frombuffer(bytearray(raw[header:]), dtype=torch.uint8)
    if width > 1:  # IDX stores big-endian; flip each value's bytes to little-endian
        values = values.view(-1, width).flip(1).contiguous().view(-1)
    return values.view(dtype).reshape(shape).clone()


def _is_kind(name: str, split: str, kind: str) -> bool:
    name = name.lower()
    if kind not in name or "idx" not in name:
        return False
    if split == "train":
        return "train" in name
    return "t10k" in name or "test" in name


def find_idx_files(root: str | Path) -> dict[str, tuple[Path, Path]]:
    """The IDX files of a folder: ``{"train": (images, labels), "test": (images, labels)}``.

    ``"test"`` is absent when the folder has no test files.

    Raises:
        IDXFormatError: No training files, two candidates for one role, or images without labels.
    """
    root = Path(root)
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise IDXFormatError(
            f"IDX data folder {str(root)!r} {what}; pass the folder that holds "
            "train-images-idx3-ubyte(.gz) and train-labels-idx1-ubyte(.gz)"
        )
    files = sorted(p for p in root.iterdir() if p.is_file())
    found: dict[str, tuple[Path, Path]] = {}
    for split in ("train", "test"):
        pair = []
        for kind in ("images", "labels"):
            matches = [p for p in files if _is_kind(p.name, split, kind)]
            if len(matches) > 1:
                names = ", ".join(p.name for p in matches)
                raise IDXFormatError(
                    f"IDX data folder {str(root)!r}: {len(matches)} {split} {kind} files "
                    f"({names}); keep one set per folder"
                )
            pair.append(matches[0] if matches else None)
        if pair[0] is None and pair[1] is None:
            continue
        if None in pair:
            have, missing = ("images", "labels") if pair[1] is None else ("labels", "images")
            raise IDXFormatError(
                f"IDX data folder {str(root)!r}: {split} {have} without {split} {missing}; add "
                f"the {split}-{missing}-idx file next to it"
            )
        found[split] = (pair[0], pair[1])
    if "train" not in found:
        raise IDXFormatError(
            f"IDX data folder {str(root)!r} holds no train-images-idx3-ubyte(.gz) / "
            "train-labels-idx1-ubyte(.gz) files; pass a folder with MNIST-format files"
        )
    return found


def resolve_idx_root(data: str | Path) -> Path:
    """The folder behind ``data``: ``"fashion-mnist"`` or a path.

    ``"fashion-mnist"`` is looked up in ``$FILTERPRUNE_FASHION_MNIST``, then in
    :data:`FASHION_MNIST_DIRS` (where Debian's ``dataset-fashion-mnist`` installs it).
    """
    if str(data).lower() != "fashion-mnist":
        return Path(data)
    candidates = [os.environ[FASHION_MNIST_ENV]] if os.environ.get(FASHION_MNIST_ENV) else []
    candidates += list(FASHION_MNIST_DIRS)
    for folder in candidates:
        if Path(folder).is_dir():
            return Path(folder)
    raise IDXFormatError(
        f"--data fashion-mnist: not found in {', '.join(candidates)}; install it with "
        "'sudo apt-get install dataset-fashion-mnist' (Debian/Ubuntu), or set "
        f"{FASHION_MNIST_ENV} to (or pass --data) a folder holding the MNIST-format files"
    )


@dataclass(frozen=True)
class IDXConfig:
    """How to turn an MNIST-format set into model inputs.

    Attributes:
        image_size: Output side in pixels; ``None`` keeps the stored size (28 for MNIST).
        resize: ``"pad"`` (zero-pad the border, centred; 28 -> 32 keeps every pixel as it is) or
            ``"bilinear"`` (interpolate). Padding needs ``image_size`` >= the stored size.
        channels: 1 (grayscale) or 3 (the gray channel repeated, for RGB models).
        val_fraction: Share of the training file held out for validation, in (0, 1).
        seed: Seed of the train/validation split.
        normalize: Map [0, 1] pixels to [-1, 1] (``(x - 0.5) / 0.5``); the padding is then -1,
            the value of a black pixel.
        transpose: Swap height and width (EMNIST stores its images transposed).
    """

    image_size: int | None = 32
    resize: str = "pad"
    channels: int = 1
    val_fraction: float = 0.1
    seed: int = 0
    normalize: bool = True
    transpose: bool = False

    def __post_init__(self) -> None:
        if self.image_size is not None and (
            not isinstance(self.image_size, int) or self.image_size < 1
        ):
            raise IDXFormatError(
                f"IDXConfig.image_size: need an int >= 1 (pixels) or None, got "
                f"{self.image_size!r}; use e.g. 32"
            )
        if self.resize not in RESIZE_MODES:
            raise IDXFormatError(
                f"IDXConfig.resize: need one of {RESIZE_MODES}, got {self.resize!r}"
            )
        if self.channels not in (1, 3):
            raise IDXFormatError(
                f"IDXConfig.channels: need 1 (grayscale) or 3 (RGB models), got {self.channels!r}"
            )
        if not isinstance(self.val_fraction, float | int) or not 0 < self.val_fraction < 1:
            raise IDXFormatError(
                f"IDXConfig.val_fraction: need a fraction in (0, 1), got {self.val_fraction!r}; "
                "use e.g. 0.1"
            )


class IDXDataset(Dataset):
    """Items of an MNIST-format set: ``(float32 (channels, size, size), int64 label)``.

    Args:
        images: uint8 ``(N, H, W)`` pixels as read by :func:`read_idx`.
        labels: ``(N,)`` integer labels.
        config: How to convert each image.
        classes: Class names; ``classes[i]`` is label ``i``.
        source: Where the images came from (for messages).
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        config: IDXConfig,
        classes: tuple[str, ...],
        source: str = "IDX",
    ) -> None:
        self.images, self.labels = images, labels.long()
        self.config, self.classes, self.source = config, tuple(classes), source
        height, width = images.shape[-2:]
        if config.transpose:
            height, width = width, height
        size = config.image_size
        if size is not None and config.resize == "pad" and size < max(height, width):
            raise IDXFormatError(
                f"{source}: image_size {size} is smaller than the stored {height}x{width}; "
                "padding cannot shrink: use resize='bilinear' (--data-arg resize=bilinear) or a "
                f"larger --image-size"
            )

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.config
        image = self.images[index].float().div_(255.0)
        if cfg.transpose:
            image = image.t()
        if cfg.normalize:
            image = image.sub_(0.5).div_(0.5)
        image = image.unsqueeze(0)
        size = cfg.image_size
        if size is not None and tuple(image.shape[-2:]) != (size, size):
            if cfg.resize == "pad":
                height, width = image.shape[-2:]
                top, left = (size - height) // 2, (size - width) // 2
                fill = -1.0 if cfg.normalize else 0.0
                image = F.pad(
                    image, (left, size - width - left, top, size - height - top), value=fill
                )
            else:
                image = F.interpolate(
                    image.unsqueeze(0), size=(size, size), mode="bilinear", align_corners=False
                ).squeeze(0)
        if cfg.channels == 3:
            image = image.expand(3, -1, -1).contiguous()
        return image, self.labels[index]


def _load_pair(images_path: Path, labels_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != torch.uint8:
        raise _fail(
            images_path,
            "shape",
            f"images must be uint8 (N, height, width), got {images.dtype} {tuple(images.shape)}",
            "pass the *-images-idx3-ubyte file",
        )
    if labels.ndim != 1 or labels.dtype.is_floating_point:
        raise _fail(
            labels_path,
            "shape",
            f"labels must be integers (N,), got {labels.dtype} {tuple(labels.shape)}",
            "pass the *-labels-idx1-ubyte file",
        )
    if len(labels) != len(images):
        raise _fail(
            labels_path,
            "count",
            f"{len(labels)} labels for {len(images)} images in {images_path.name}",
            "use the labels file of the same set",
        )
    if len(labels) and int(labels.min()) < 0:
        raise _fail(labels_path, "values", f"negative label {int(labels.min())}", "fix it")
    return images, labels


def idx_datasets(
    root: str | Path, config: IDXConfig | None = None
) -> tuple[IDXDataset, IDXDataset, IDXDataset | None]:
    """Train / validation / test datasets of the MNIST-format set in ``root``.

    Args:
        root: A folder as :func:`find_idx_files` describes, or ``"fashion-mnist"``.
        config: Conversion and split options; defaults to ``IDXConfig()`` (32x32 padded, 1 channel,
            10 % validation).

    Returns:
        ``(train, val, test)``; train and validation are disjoint, seeded, random parts of the
        training file (in random order, so a prefix is a random subset); ``test`` is the
        ``t10k``/``test`` file, or ``None`` when the folder has none.
    """
    config = config or IDXConfig()
    folder = resolve_idx_root(root)
    files = find_idx_files(folder)
    images, labels = _load_pair(*files["train"])
    num_classes = int(labels.max()) + 1 if len(labels) else 0
    test_pair = _load_pair(*files["test"]) if "test" in files else None
    if test_pair is not None and len(test_pair[1]):
        num_classes = max(num_classes, int(test_pair[1].max()) + 1)
    fashion = str(root).lower() == "fashion-mnist" or folder.name.lower() == "fashion-mnist"
    classes = (
        FASHION_MNIST_CLASSES
        if fashion and num_classes <= len(FASHION_MNIST_CLASSES)
        else tuple(str(i) for i in range(num_classes))
    )
    n_val = max(1, round(len(labels) * config.val_fraction))
    if n_val >= len(labels):
        raise IDXFormatError(
            f"IDX data folder {str(folder)!r}: {len(labels)} training images leave none for "
            f"training after a {config.val_fraction} validation share; lower val_fraction"
        )
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(config.seed))
    val_idx, train_idx = order[:n_val], order[n_val:]

    def make(idx_images: torch.Tensor, idx_labels: torch.Tensor, split: str) -> IDXDataset:
        return IDXDataset(
            idx_images, idx_labels, config=config, classes=classes, source=f"{folder} ({split})"
        )

    train = make(images[train_idx], labels[train_idx], "train")
    val = make(images[val_idx], labels[val_idx], "validation")
    test = make(*test_pair, "test") if test_pair is not None else None
    return train, val, test
