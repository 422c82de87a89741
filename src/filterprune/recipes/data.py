"""Datasets and loaders for a registered task: built-in data or a folder (train, prune, eval).

Folder layouts (``--data DIR``):

* classify: ``DIR/train/CLASS/*.png`` and a validation split ``DIR/VAL/CLASS/*.png`` where VAL is
  ``val``, ``valid``, ``validation`` or ``test`` (the first found in that order); ``DIR/train``
  alone or ``DIR/CLASS/*.png`` is split randomly (``--val-fraction``).
* classify, MNIST format: ``--data fashion-mnist`` (the Debian package's folder) or a folder
  holding ``train-images-idx3-ubyte(.gz)`` + ``train-labels-idx1-ubyte(.gz)`` (MNIST, KMNIST,
  EMNIST ...); ``--val-fraction`` of the training file validates, the ``t10k`` file is never used.
  ``--data-arg channels=3``, ``--data-arg resize=bilinear``, ``--data-arg transpose=true``.
* segment / detect, Fashion-MNIST canvases: ``--data fashion-mnist-seg`` (binary foreground masks,
  for ``--task segment``) and ``--data fashion-mnist-det`` (boxes and classes, ``--task detect``)
  draw canvases of ``--image-size`` px with 1-6 Fashion-MNIST items
  (:mod:`filterprune.tasks.canvas`) from the files ``--data fashion-mnist`` finds (or
  ``--data-arg root=DIR``); validation canvases from a ``--val-fraction`` share of the training
  file's images, test canvases (``eval --split test``) from the ``t10k`` file only.
  ``--data-arg`` options: :data:`CANVAS_OPTIONS`.
* segment: Carvana, ``DIR/train/ID.jpg`` with ``DIR/train_masks/ID_mask.gif`` (or ``images/`` with
  ``masks/``), split by car so no car is on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from ..parallel import is_distributed
from .errors import RecipeError

DEFAULT_IMAGE_SIZE = {"classify": 32, "segment": 64, "detect": 64}
#: ``--data`` names of the Fashion-MNIST canvases -> the task each is for.
CANVAS_DATA = {"fashion-mnist-seg": "segment", "fashion-mnist-det": "detect"}
#: ``--data-arg`` options of the canvases: the counts, a folder, and ``CanvasConfig`` fields.
CANVAS_OPTIONS = (
    "root",
    "train_canvases",
    "val_canvases",
    "test_canvases",
    "min_items",
    "max_items",
    "min_scale",
    "max_scale",
    "backgrounds",
    "channels",
    "threshold",
    "min_visible",
)


def data_settings(
    task_name: str,
    *,
    data: str | Path | None = None,
    image_size: int | None = None,
    val_fraction: float | None = None,
    data_args: dict[str, Any] | None = None,
    seed: int | None = None,
    saved: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The data settings given, falling back to ``saved`` (model.json's ``data``), then defaults.

    Unless ``seed`` is given, the split seed is the saved one, so that pruning and evaluation
    never validate on images the baseline was trained on.
    """
    saved = saved or {}
    return {
        "data": str(data) if data else saved.get("data", "builtin"),
        "image_size": image_size or saved.get("image_size", DEFAULT_IMAGE_SIZE[task_name]),
        "val_fraction": val_fraction or saved.get("val_fraction", 0.2),
        "data_args": dict(data_args) if data_args else saved.get("data_args", {}),
        "seed": seed if seed is not None else saved.get("seed", 0),
    }


@dataclass
class Data:
    """A task with its datasets and loaders; ``settings`` is what model.json stores as ``data``."""

    task: Any
    train: Dataset
    val: Dataset
    train_loader: DataLoader
    val_loader: DataLoader
    settings: dict[str, Any]

    @property
    def example(self) -> torch.Tensor:
        """One validation input with a batch dimension, for tracing and counting."""
        return self.val[0][0].unsqueeze(0)


def _is_idx(data: str) -> bool:
    if data.lower() == "fashion-mnist":
        return True
    root = Path(data)
    return root.is_dir() and any(
        p.is_file() and "idx" in p.name.lower() and "train" in p.name.lower()
        for p in root.iterdir()
    )


def _idx(
    task_name: str, settings: dict[str, Any], *, test: bool = False
) -> tuple[Dataset, Dataset]:
    from ..tasks.idx import IDXConfig, idx_datasets

    if task_name != "classify":
        raise RecipeError(f"--data {settings['data']}: MNIST-format data is for --task classify")
    options = dict(settings["data_args"])
    known = ("channels", "resize", "transpose", "normalize")
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise RecipeError(
            f"--data-arg {', '.join(unknown)}: not an option of MNIST-format data; "
            f"known: {', '.join(known)}"
        )
    config = IDXConfig(
        image_size=settings["image_size"],
        val_fraction=settings["val_fraction"],
        seed=settings["seed"],
        **options,
    )
    train, val, test_set = idx_datasets(settings["data"], config)
    if test:  # eval --split test only: train and prune never read the t10k file
        if test_set is None or len(test_set) == 0:
            raise RecipeError(
                f"--split test: --data {settings['data']} has no t10k test file; "
                "evaluate on the validation split (--split val)"
            )
        return train, test_set
    return train, val


def _canvas(
    task_name: str, settings: dict[str, Any], *, test: bool = False
) -> tuple[Dataset, Dataset]:
    from ..tasks.canvas import CanvasConfig
    from ..tasks.canvas_sets import canvas_datasets

    name = settings["data"].lower()
    if CANVAS_DATA[name] != task_name:
        raise RecipeError(
            f"--data {name}: these canvases are for --task {CANVAS_DATA[name]}, not {task_name}"
        )
    options = dict(settings["data_args"])
    unknown = sorted(set(options) - set(CANVAS_OPTIONS))
    if unknown:
        raise RecipeError(
            f"--data-arg {', '.join(unknown)}: not an option of --data {name}; known: "
            f"{', '.join(CANVAS_OPTIONS)}"
        )
    counts = {
        key: options.pop(f"{key}_canvases")
        for key in ("train", "val", "test")
        if f"{key}_canvases" in options
    }
    root = options.pop("root", "fashion-mnist")
    if isinstance(options.get("backgrounds"), str):
        options["backgrounds"] = tuple(options["backgrounds"].split(","))
    elif "backgrounds" in options:
        options["backgrounds"] = tuple(options["backgrounds"])
    config = CanvasConfig(size=settings["image_size"], seed=settings["seed"], **options)
    train, val, test_set = canvas_datasets(
        root,
        kind=task_name,
        config=config,
        val_fraction=settings["val_fraction"],
        **{f"num_{key}": int(value) for key, value in counts.items()},
    )
    if test:  # eval --split test only: train and prune never read the t10k file
        if test_set is None:
            raise RecipeError(
                f"--split test: --data {name} found no t10k test file in {root}; evaluate on the "
                "validation split (--split val)"
            )
        return train, test_set
    return train, val


VAL_SPLITS = ("val", "valid", "validation", "test")


def _class_splits(root: Path) -> tuple[Path, Path | None]:
    """The training folder and the validation folder (None: split randomly) of a classify DIR."""
    folders = sorted(p.name for p in root.iterdir() if p.is_dir())
    splits = [name for name in VAL_SPLITS if name in folders]
    expected = (
        "expected DIR/train/CLASS/*.png with DIR/val/CLASS/*.png (or valid/, validation/, "
        "test/), or DIR/CLASS/*.png split randomly"
    )
    if "train" in folders:
        return root / "train", (root / splits[0] if splits else None)
    if splits:
        raise RecipeError(
            f"--data {root}: found split folder {splits[0]}/ but no train/ (folders: "
            f"{', '.join(folders)}); {expected}"
        )
    return root, None


def _folder(
    task_name: str, root: Path, size: int, val_fraction: float, seed: int, resize_masks: bool
):
    from ..tasks import CarvanaDataset, ImageFolderDataset, split_by_object_id

    if not root.is_dir():
        raise RecipeError(
            f"--data {root}: folder does not exist; pass a folder, 'builtin' or 'fashion-mnist'"
        )
    if task_name == "classify":
        train_dir, val_dir = _class_splits(root)
        if val_dir is not None:
            train, val = (
                ImageFolderDataset(train_dir, image_size=size),
                ImageFolderDataset(val_dir, image_size=size),
            )
            if train.classes != val.classes:
                raise RecipeError(
                    f"--data {root}: the classes of {train_dir.name}/ ({', '.join(train.classes)}) "
                    f"and {val_dir.name}/ ({', '.join(val.classes)}) differ; both splits need "
                    "the same class folders"
                )
            return train, val
        full = ImageFolderDataset(train_dir, image_size=size)
        order = torch.randperm(len(full), generator=torch.Generator().manual_seed(seed)).tolist()
        n_val = max(1, round(len(full) * val_fraction))
        return Subset(full, sorted(order[n_val:])), Subset(full, sorted(order[:n_val]))
    for images, masks in (("train", "train_masks"), ("images", "masks")):
        if (root / images).is_dir() and (root / masks).is_dir():
            full = CarvanaDataset(
                root / images, root / masks, image_size=size, resize_masks=resize_masks
            )
            train_idx, val_idx = split_by_object_id(full.ids, val_fraction, seed)
            return Subset(full, train_idx), Subset(full, val_idx)
    raise RecipeError(
        f"--data {root}: expected Carvana folders {root}/train + {root}/train_masks "
        f"(or images + masks) for the segment task"
    )


def _test_folder(task_name: str, root: Path, size: int, train: Dataset) -> Dataset:
    """A classify folder's ``test/`` split, with the training classes."""
    from ..tasks import ImageFolderDataset

    if task_name != "classify" or not (root / "test").is_dir():
        raise RecipeError(
            f"--split test: --data {root} has no test/ folder; evaluate on the validation split "
            "(--split val)"
        )
    test = ImageFolderDataset(root / "test", image_size=size)
    classes = getattr(train, "classes", None) or getattr(
        getattr(train, "dataset", None), "classes", None
    )
    if classes is not None and test.classes != classes:
        raise RecipeError(
            f"--data {root}: the classes of test/ ({', '.join(test.classes)}) and of train/ "
            f"({', '.join(classes)}) differ"
        )
    return test


def load_data(
    task_name: str,
    *,
    data: str | Path | None = None,
    image_size: int | None = None,
    val_fraction: float | None = None,
    data_args: dict[str, Any] | None = None,
    batch_size: int = 16,
    limit: int | None = None,
    seed: int | None = None,
    saved: dict[str, Any] | None = None,
    resize_masks: bool = False,
    split: str = "val",
) -> Data:
    """Datasets and loaders for ``task_name`` (``"classify"``, ``"segment"`` or ``"detect"``).

    Args:
        task_name: A registered task.
        data: ``"builtin"`` (digits for classify, synthetic cars for segment; the default),
            ``"fashion-mnist"``, ``"fashion-mnist-seg"``, ``"fashion-mnist-det"`` (canvases) or a
            folder (layouts in the module docstring).
        image_size: Images are resized to this square size (default 32 classify, 64 segment and
            detect); the side of the canvases.
        val_fraction: Validation share when the folder has no split (default 0.2).
        data_args: Options of the built-in data, e.g. ``{"num_cars": 16}``, or of MNIST-format
            data: ``channels`` (1 or 3), ``resize`` (``"pad"``/``"bilinear"``), ``transpose``.
        batch_size: Training batch size (validation uses at least 32).
        limit: Use at most this many training and validation samples.
        seed: Split seed (default: ``saved``'s, else 0).
        saved: Settings stored in a model.json (``Data.settings`` of an earlier call).
        resize_masks: Segment folders: resize a mask whose size differs from its image (by
            default that is an error naming both files).
        split: What ``Data.val`` holds: ``"val"`` (the validation split; what ``train`` and
            ``prune`` use) or ``"test"``, for a final evaluation only: the ``t10k`` file of
            MNIST-format data, or a classify folder's ``test/`` (when the folder also has a
            ``val/``, ``valid/`` or ``validation/``, ``test/`` is read by nothing else; with
            ``train/`` and ``test/`` alone, ``test/`` is also the validation split).

    Under torchrun the training loader yields this rank's shard (a ``DistributedSampler``); the
    validation loader holds the whole validation set on every rank.
    """
    from ..tasks import builtin_data, get_task

    task = get_task(task_name)
    settings = data_settings(
        task_name,
        data=data,
        image_size=image_size,
        val_fraction=val_fraction,
        data_args=data_args,
        seed=seed,
        saved=saved,
    )
    size, seed = settings["image_size"], settings["seed"]
    if settings["data"] == "builtin":
        options = {"image_size": size, **settings["data_args"]}
        try:
            train, val = builtin_data(task_name, seed=seed, **options)
        except TypeError as exc:
            raise RecipeError(f"--data-arg {settings['data_args']}: {exc}") from None
    elif settings["data"].lower() in CANVAS_DATA:
        train, val = _canvas(task_name, settings, test=split == "test")
    elif _is_idx(settings["data"]):
        train, val = _idx(task_name, settings, test=split == "test")
    else:
        if settings["data_args"]:
            raise RecipeError("--data-arg only applies to --data builtin")
        root = Path(settings["data"])
        train, val = _folder(task_name, root, size, settings["val_fraction"], seed, resize_masks)
        if split == "test":
            val = _test_folder(task_name, root, size, train)
    if split not in ("val", "test"):
        raise RecipeError(f"--split must be val or test, got {split!r}")
    canvases = settings["data"].lower() in CANVAS_DATA
    if split == "test" and (
        settings["data"] == "builtin" or (task_name != "classify" and not canvases)
    ):
        raise RecipeError(
            f"--split test: --data {settings['data']} has no test split (a classify folder's "
            "test/ or an MNIST-format t10k file); evaluate on the validation split (--split val)"
        )
    if limit is not None:
        if limit < 1:
            raise RecipeError(f"--limit must be >= 1, got {limit}")
        train = Subset(train, range(min(limit, len(train))))
        val = Subset(val, range(min(limit, len(val))))
    if len(train) == 0 or len(val) == 0:
        raise RecipeError(f"--data {settings['data']}: no training or no validation samples")
    if batch_size < 1:
        raise RecipeError(f"--batch-size must be >= 1, got {batch_size}")
    # no generator of its own: the shuffle follows the global RNG, which the pruning loop reseeds
    # from (seed, iteration), so a resumed run draws the same batches as an uninterrupted one
    if is_distributed():  # torchrun: this rank's shard; set_epoch reshuffles (loop.EpochLoader)
        shard = DistributedSampler(train, shuffle=True, seed=seed)
        train_loader = DataLoader(train, batch_size=batch_size, sampler=shard)
    else:
        train_loader = DataLoader(train, batch_size=batch_size, shuffle=True)
    return Data(
        task=task,
        train=train,
        val=val,
        train_loader=train_loader,
        val_loader=DataLoader(val, batch_size=max(batch_size, 32)),
        settings=settings,
    )


def default_model_args(spec: str, task_name: str, data: Data, given: dict[str, Any]) -> dict:
    """``given`` plus ``num_classes`` and the input channels from the data, for a built-in or hub
    (``timm:``) model; the channel count under the model's own keyword (``in_channels``, timm's
    ``in_chans``).

    Raises:
        RecipeError: The data is not 3-channel and the model's library has no keyword for it
            (torchvision), with the fix.
    """
    from ..models import is_hub_name
    from ..models.hub import input_channels_arg

    if ":" in spec and not is_hub_name(spec):
        return dict(given)
    out = dict(given)
    base = data.train
    while isinstance(base, Subset):
        base = base.dataset
    if task_name == "segment":
        out.setdefault("num_classes", 1)
    elif task_name == "detect":
        out.setdefault("num_classes", len(getattr(base, "classes", ())) or 10)
    else:
        tensors = getattr(base, "tensors", None)
        classes = getattr(base, "classes", None)
        if tensors is not None and len(tensors) > 1:
            out.setdefault("num_classes", int(tensors[1].max()) + 1)
        elif classes is not None:
            out.setdefault("num_classes", len(classes))
    channels = data.example.shape[1] if data.example.ndim == 4 else 3
    if channels != 3:  # e.g. grayscale MNIST-format data or gray canvases
        key = input_channels_arg(spec)
        if key is None:
            raise RecipeError(
                f"--model {spec}: the data has {channels}-channel images and this library's "
                "models take 3 channels; add --data-arg channels=3 (gray images repeated), or "
                "use a built-in or timm: model"
            )
        out.setdefault(key, int(channels))
    return out
