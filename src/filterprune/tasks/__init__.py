"""Data and tasks: built-in datasets, folder datasets, metrics, losses and the finetuning loop.

Tasks: ``classify``, ``segment`` and ``detect`` (boxes; its mAP needs the ``detect`` extra).

Importing this package needs only torch; numpy, Pillow and scikit-learn (``pip install
"filterprune[data]"``) are imported when a function that needs them runs.
"""

from filterprune.tasks.canvas import Canvas, CanvasConfig, draw_canvas
from filterprune.tasks.canvas_sets import CanvasDataset, canvas_datasets, detection_target
from filterprune.tasks.classify import ClassificationTask
from filterprune.tasks.detect import DetectionMeter, DetectionTask, decode
from filterprune.tasks.detect_metrics import mean_average_precision
from filterprune.tasks.digits import DigitsConfig, digits_datasets, load_digits_tensors
from filterprune.tasks.folders import CarvanaDataset, ImageFolderDataset
from filterprune.tasks.idx import IDXConfig, IDXDataset, IDXFormatError, idx_datasets, read_idx
from filterprune.tasks.losses import BCEDiceLoss, soft_dice_loss
from filterprune.tasks.metrics import (
    ClassificationMeter,
    SegmentationMeter,
    accuracy,
    dice_per_image,
    iou_per_image,
    topk_accuracy,
)
from filterprune.tasks.segment import SegmentationTask
from filterprune.tasks.splits import split_by_object_id
from filterprune.tasks.synthetic import (
    SyntheticCars,
    SyntheticCarsConfig,
    make_synthetic_cars,
    write_carvana_layout,
)
from filterprune.tasks.task import Task, builtin_data, get_task, list_tasks, register_task
from filterprune.tasks.trainer import FinetuneConfig, NonFiniteLossError, finetune

__all__ = [
    "BCEDiceLoss",
    "Canvas",
    "CanvasConfig",
    "CanvasDataset",
    "DetectionMeter",
    "DetectionTask",
    "CarvanaDataset",
    "ClassificationMeter",
    "ClassificationTask",
    "DigitsConfig",
    "FinetuneConfig",
    "IDXConfig",
    "IDXDataset",
    "IDXFormatError",
    "ImageFolderDataset",
    "NonFiniteLossError",
    "SegmentationMeter",
    "SegmentationTask",
    "SyntheticCars",
    "SyntheticCarsConfig",
    "Task",
    "accuracy",
    "builtin_data",
    "canvas_datasets",
    "decode",
    "detection_target",
    "draw_canvas",
    "dice_per_image",
    "digits_datasets",
    "finetune",
    "get_task",
    "idx_datasets",
    "iou_per_image",
    "list_tasks",
    "load_digits_tensors",
    "make_synthetic_cars",
    "mean_average_precision",
    "read_idx",
    "register_task",
    "soft_dice_loss",
    "split_by_object_id",
    "topk_accuracy",
    "write_carvana_layout",
]
