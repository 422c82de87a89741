"""COCO mean average precision of boxes, from a well-kept implementation (never written here).

``pip install "filterprune[detect]"`` installs torchmetrics and faster-coco-eval. The numbers come
from torchmetrics' ``MeanAveragePrecision`` with the faster-coco-eval backend (or pycocotools);
torchmetrics scores boxes only with torchvision installed; without it the same backend's
``COCOeval`` runs directly on the same boxes (the numbers torchmetrics would report: it calls that
``COCOeval``), and torchmetrics is not imported.

* ``map``: mAP@0.5:0.95, the mean over IoU thresholds 0.50, 0.55, ..., 0.95 and over classes;
* ``map50``: mAP@0.5; ``map75``: mAP@0.75 (COCO, Lin et al. 2014, https://cocodataset.org).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
from typing import Any

import torch

from ..errors import MissingDependencyError

__all__ = ["DETECT_EXTRA", "coco_backend", "mean_average_precision"]

DETECT_EXTRA = 'pip install "filterprune[detect]" (torchmetrics and faster-coco-eval)'
_BACKENDS = (("faster_coco_eval", "faster_coco_eval"), ("pycocotools", "pycocotools.cocoeval"))
_SCALE = 1000.0  # boxes in image shares (0..1) are evaluated in thousandths of the side


def coco_backend() -> str:
    """``"faster_coco_eval"`` or ``"pycocotools"``, whichever is installed (in that order).

    Raises:
        MissingDependencyError: Neither is installed; the message says what to install.
    """
    for name, module in _BACKENDS:
        try:
            importlib.import_module(module)
        except ImportError:
            continue
        return name
    raise MissingDependencyError(
        "the detect task's mAP needs faster-coco-eval (or pycocotools) and torchmetrics, which "
        f"are not installed. Install them with: {DETECT_EXTRA}"
    )


def _torchmetrics(backend: str) -> Any | None:
    """torchmetrics' MeanAveragePrecision, or ``None`` where it cannot score boxes here."""
    if importlib.util.find_spec("torchvision") is None:
        return None  # torchmetrics scores boxes only with torchvision (and takes seconds to import)
    try:
        from torchmetrics.detection.mean_ap import MeanAveragePrecision
    except ImportError as err:
        raise MissingDependencyError(
            f"the detect task's mAP needs torchmetrics, which is not installed. Install it with: "
            f"{DETECT_EXTRA}"
        ) from err
    try:
        return MeanAveragePrecision(box_format="xyxy", iou_type="bbox", backend=backend)
    except ModuleNotFoundError:  # torchmetrics wants torchvision for boxes
        return None


def _coco_direct(
    backend: str, preds: list[dict[str, torch.Tensor]], targets: list[dict[str, torch.Tensor]]
) -> dict[str, float]:
    if backend == "faster_coco_eval":
        from faster_coco_eval import COCO
        from faster_coco_eval import COCOeval_faster as COCOeval
    else:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

    def xywh(box: torch.Tensor) -> list[float]:
        x1, y1, x2, y2 = (float(v) * _SCALE for v in box)
        return [x1, y1, x2 - x1, y2 - y1]

    images, annotations, detections, classes = [], [], [], set()
    for image_id, (pred, target) in enumerate(zip(preds, targets, strict=True), start=1):
        images.append({"id": image_id, "width": _SCALE, "height": _SCALE})
        for box, label in zip(target["boxes"], target["labels"], strict=True):
            x, y, w, h = xywh(box)
            classes.add(int(label))
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(label),
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
        for box, score, label in zip(pred["boxes"], pred["scores"], pred["labels"], strict=True):
            classes.add(int(label))
            detections.append(
                {
                    "image_id": image_id,
                    "category_id": int(label),
                    "bbox": xywh(box),
                    "score": float(score),
                }
            )
    if not annotations:
        return {"map": -1.0, "map50": -1.0, "map75": -1.0}  # as COCO: undefined without objects
    if not detections:
        return {"map": 0.0, "map50": 0.0, "map75": 0.0}
    truth = COCO()
    truth.dataset = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": c} for c in sorted(classes)],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        truth.createIndex()
        found = truth.loadRes(detections)
        evaluation = COCOeval(truth, found, "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    stats = [float(v) for v in evaluation.stats[:3]]
    return {"map": stats[0], "map50": stats[1], "map75": stats[2]}


def mean_average_precision(
    preds: list[dict[str, torch.Tensor]], targets: list[dict[str, torch.Tensor]]
) -> dict[str, float]:
    """COCO mAP of per-image detections against per-image ground truth.

    Args:
        preds: Per image ``{"boxes": (M, 4) xyxy, "scores": (M,), "labels": (M,) int}``.
        targets: Per image ``{"boxes": (K, 4) xyxy, "labels": (K,) int}``.

    Returns:
        ``{"map": mAP@0.5:0.95, "map50": mAP@0.5, "map75": mAP@0.75}``, each in [0, 1]
        (-1 where the images hold no object at all, as COCO reports it).
    """
    backend = coco_backend()
    metric = _torchmetrics(backend)
    if metric is None:
        return _coco_direct(backend, preds, targets)
    scale = torch.tensor(_SCALE)
    metric.update(
        [{**p, "boxes": p["boxes"].float() * scale} for p in preds],
        [{**t, "boxes": t["boxes"].float() * scale} for t in targets],
    )
    with contextlib.redirect_stdout(io.StringIO()):
        result = metric.compute()
    return {
        "map": float(result["map"]),
        "map50": float(result["map_50"]),
        "map75": float(result["map_75"]),
    }
