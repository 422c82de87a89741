"""Object detection with an anchor-free, multi-scale head: loss, decoding and COCO mAP.

The model returns a list of maps ``(N, 4 + C, H_l, W_l)``, one per scale (the format of
:mod:`filterprune.tasks.boxes`); targets are ``(N, R, 5)`` rows ``(class, x1, y1, x2, y2)`` with
coordinates as shares of the image side and class -1 on padding rows (what
``--data fashion-mnist-det`` yields).

**Assignment** (task-aligned, after TOOD, Feng et al. 2021, https://arxiv.org/abs/2108.07755):
the candidates of an object are the points inside its box, on every scale; each is scored
``p^0.5 * IoU^6`` (``p`` the predicted probability of the object's class, IoU of the predicted box
with the object's); the ``top_k`` best are its positives (the nearest point when no point lies
inside); a point claimed by several objects stays with the one its box overlaps most.
**Loss**: binary cross-entropy of every class logit against a soft target (at a positive, its
score scaled so that the object's best point gets its best IoU; 0 elsewhere) plus
``box_weight x (1 - GIoU)`` at the positives weighted by the same target, both divided by the
sum of the targets.
**Decoding**: per image, the ``max_candidates`` best (point, class) scores above
``score_threshold``, class-wise non-maximum suppression at ``nms_iou``, at most
``max_detections`` boxes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError, DataError
from .boxes import HeadOutput, aligned_iou, box_iou, flatten_levels, nms
from .detect_metrics import coco_backend, mean_average_precision
from .task import Task, register_task

__all__ = ["DetectionMeter", "DetectionTask", "decode", "split_targets"]


def split_targets(target: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(N, R, 5)`` padded rows -> per image ``(boxes (K, 4), classes (K,) int64)``."""
    if target.ndim != 3 or target.shape[-1] != 5:
        raise DataError(
            f"detect task: targets must be (N, rows, 5) rows (class, x1, y1, x2, y2) with class "
            f"-1 on padding rows, got {tuple(target.shape)}; use --data fashion-mnist-det"
        )
    out = []
    for rows in target:
        rows = rows[rows[:, 0] >= 0]
        out.append((rows[:, 1:].float(), rows[:, 0].long()))
    return out


def _assign(
    head: HeadOutput, image: int, boxes: torch.Tensor, classes: torch.Tensor, top_k: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Positives of one image: ``(points (P,), objects (P,), soft targets (P,))``."""
    pred = head.boxes[image].detach()
    prob = head.logits[image].detach().sigmoid()
    points = head.points
    inside = (
        (points[None, :, 0] > boxes[:, None, 0])
        & (points[None, :, 0] < boxes[:, None, 2])
        & (points[None, :, 1] > boxes[:, None, 1])
        & (points[None, :, 1] < boxes[:, None, 3])
    )  # (K, A)
    iou = box_iou(boxes, pred)  # (K, A)
    score = prob[:, classes].T.clamp(min=1e-9).pow(0.5) * iou.pow(6) * inside
    k = min(top_k, score.shape[1])
    best = score.topk(k, dim=1).indices
    chosen = torch.zeros_like(inside).scatter_(1, best, True) & inside
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    empty = ~chosen.any(1)
    if empty.any():  # tiny object between points: its nearest point on the finest scale
        gap = ((points[None] - centres[:, None]) / head.cells[None]).pow(2).sum(-1)
        chosen[empty, gap[empty].argmin(1)] = True
    claims = chosen.sum(0)
    if (claims > 1).any():  # a point claimed twice stays with the object it overlaps most
        owner = (iou * chosen).argmax(0)
        many = claims > 1
        chosen[:, many] = False
        chosen[owner[many], many.nonzero()[:, 0]] = True
    objects, where = chosen.nonzero(as_tuple=True)
    best_score = (score * chosen).amax(1).clamp(min=1e-9)
    best_iou = (iou * chosen).amax(1)
    soft = score[objects, where] / best_score[objects] * best_iou[objects]
    return where, objects, soft


class DetectionLoss(nn.Module):
    """The detect task's loss (see the module docstring) of head maps against padded targets."""

    def __init__(self, *, top_k: int = 10, box_weight: float = 2.5) -> None:
        super().__init__()
        self.top_k, self.box_weight = top_k, box_weight

    def forward(self, levels: Sequence[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        head = flatten_levels(levels)
        images = split_targets(target)
        if len(images) != head.logits.shape[0]:
            raise DataError(
                f"detect task: {head.logits.shape[0]} predictions for {len(images)} targets"
            )
        soft_classes = torch.zeros_like(head.logits)
        box_terms, total = [], head.logits.new_zeros(())
        for image, (boxes, classes) in enumerate(images):
            if len(boxes) == 0:
                continue
            if int(classes.max()) >= head.logits.shape[-1]:
                raise DataError(
                    f"detect task: the data has class {int(classes.max())} but the model predicts "
                    f"{head.logits.shape[-1]} classes; build it with num_classes="
                    f"{int(classes.max()) + 1}"
                )
            where, objects, soft = _assign(head, image, boxes, classes, self.top_k)
            soft_classes[image, where, classes[objects]] = soft
            giou = aligned_iou(head.boxes[image, where], boxes[objects], generalized=True)
            box_terms.append(((1 - giou) * soft).sum())
            total = total + soft.sum()
        norm = total.clamp(min=1.0)
        cls_loss = F.binary_cross_entropy_with_logits(head.logits, soft_classes, reduction="sum")
        box_loss = torch.stack(box_terms).sum() if box_terms else head.logits.new_zeros(())
        return (cls_loss + self.box_weight * box_loss) / norm


@torch.no_grad()
def decode(
    levels: Sequence[torch.Tensor],
    *,
    score_threshold: float = 0.001,
    nms_iou: float = 0.6,
    max_candidates: int = 300,
    max_detections: int = 100,
) -> list[dict[str, torch.Tensor]]:
    """Detections per image: ``{"boxes": (M, 4) xyxy shares, "scores": (M,), "labels": (M,)}``."""
    head = flatten_levels(levels)
    boxes_all, scores_all = head.boxes.clamp(0, 1), head.logits.sigmoid()
    classes = scores_all.shape[-1]
    out = []
    for boxes, scores in zip(boxes_all, scores_all, strict=True):
        flat = scores.flatten()
        top = flat.topk(min(max_candidates, flat.numel()))
        keep = top.values > score_threshold
        values, index = top.values[keep], top.indices[keep]
        points, labels = index // classes, index % classes
        kept = nms(boxes[points], values, labels, nms_iou)[:max_detections]
        out.append({"boxes": boxes[points][kept], "scores": values[kept], "labels": labels[kept]})
    return out


class DetectionMeter:
    """Collects detections and ground truth over batches; ``compute`` gives COCO mAP and the loss."""

    def __init__(self, **decoding: Any) -> None:
        self.decoding = decoding
        self.preds: list[dict[str, torch.Tensor]] = []
        self.targets: list[dict[str, torch.Tensor]] = []
        self.loss_sum, self.count = 0.0, 0

    def update(self, output: Sequence[torch.Tensor], target: torch.Tensor, *, loss: float) -> None:
        found = decode(output, **self.decoding)
        truth = split_targets(target)
        self.preds += [{k: v.cpu() for k, v in d.items()} for d in found]
        self.targets += [{"boxes": b.cpu(), "labels": c.cpu()} for b, c in truth]
        self.loss_sum += loss * len(found)
        self.count += len(found)

    def compute(self) -> dict[str, float]:
        result = mean_average_precision(self.preds, self.targets)
        result["loss"] = self.loss_sum / max(self.count, 1)
        return result


@register_task("detect")
class DetectionTask(Task):
    """Boxes and classes from an anchor-free multi-scale head; ``evaluate`` reports COCO mAP.

    ``evaluate`` returns ``map`` (mAP@0.5:0.95, the primary metric), ``map50``, ``map75`` and
    ``loss``; it needs the ``detect`` extra (``pip install "filterprune[detect]"``).

    Args:
        top_k: Positive points per object (assignment).
        box_weight: Weight of the GIoU term.
        score_threshold: Lowest score a decoded box keeps.
        nms_iou: IoU above which non-maximum suppression drops a box of the same class.
    """

    primary_metric = "map"
    higher_is_better = True

    def __init__(
        self,
        *,
        top_k: int = 10,
        box_weight: float = 2.5,
        score_threshold: float = 0.001,
        nms_iou: float = 0.6,
    ) -> None:
        if top_k < 1 or box_weight < 0 or not 0 <= score_threshold < 1 or not 0 < nms_iou <= 1:
            raise ConfigError(
                f"detect task: need top_k >= 1, box_weight >= 0, score_threshold in [0, 1) and "
                f"nms_iou in (0, 1]; got {top_k}, {box_weight}, {score_threshold}, {nms_iou}"
            )
        self.criterion = DetectionLoss(top_k=top_k, box_weight=box_weight)
        self.decoding = {"score_threshold": score_threshold, "nms_iou": nms_iou}

    def prediction(self, output: Any) -> Any:
        """A head's maps: the list the model returns (or its ``"out"`` entry)."""
        if isinstance(output, dict) and "out" in output:
            output = output["out"]
        return [output] if isinstance(output, torch.Tensor) else list(output)

    def align(self, output: Any, target: torch.Tensor) -> tuple[Any, torch.Tensor]:
        flatten_levels(output)  # the maps' shapes, checked with a message that names them
        split_targets(target)
        return output, target

    def compute_loss(self, output: Any, target: torch.Tensor) -> torch.Tensor:
        return self.criterion(output, target)

    def make_meter(self) -> DetectionMeter:
        coco_backend()  # a missing extra fails before any batch runs
        return DetectionMeter(**self.decoding)

    def builtin_data(self, *, seed: int = 0, **options: Any) -> tuple[Any, Any]:
        raise DataError(
            "detect task: there is no built-in data; use --data fashion-mnist-det (canvases of "
            "Fashion-MNIST items; 'apt-get install dataset-fashion-mnist') or, from Python, "
            "filterprune.tasks.canvas_datasets(kind='detect')"
        )
