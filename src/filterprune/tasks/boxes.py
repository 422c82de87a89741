"""Box geometry and the output format of an anchor-free, multi-scale detection head.

A head returns one map per scale, ``(N, 4 + C, H_l, W_l)``: at each cell, 4 distance logits
(left, top, right, bottom) and ``C`` class logits. Coordinates are shares of the image side
(0..1), so nothing needs the strides: cell ``(i, j)`` of a ``H x W`` map is centred at
``((j + 0.5) / W, (i + 0.5) / H)``, and a distance logit ``d`` is ``softplus(d)`` cells of that
map. Boxes are ``(x1, y1, x2, y2)``. The idea of predicting the four distances from a point
follows FCOS (Tian et al., 2019, https://arxiv.org/abs/1904.01355).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn import functional as F

from ..errors import ConfigError

__all__ = [
    "HeadOutput",
    "aligned_iou",
    "box_iou",
    "flatten_levels",
    "nms",
]


class HeadOutput:
    """A head's maps flattened over all scales (``A = sum of H_l * W_l`` points).

    Attributes:
        points: ``(A, 2)`` point centres ``(x, y)``.
        cells: ``(A, 2)`` cell sizes ``(1 / W_l, 1 / H_l)``.
        distances: ``(N, A, 4)`` left, top, right, bottom, in image shares.
        logits: ``(N, A, C)`` class logits.
    """

    def __init__(
        self,
        points: torch.Tensor,
        cells: torch.Tensor,
        distances: torch.Tensor,
        logits: torch.Tensor,
    ) -> None:
        self.points, self.cells, self.distances, self.logits = points, cells, distances, logits

    @property
    def boxes(self) -> torch.Tensor:
        """``(N, A, 4)`` decoded boxes ``(x1, y1, x2, y2)``."""
        left_top = self.points - self.distances[..., :2]
        right_bottom = self.points + self.distances[..., 2:]
        return torch.cat([left_top, right_bottom], dim=-1)


def flatten_levels(levels: Sequence[torch.Tensor], num_classes: int | None = None) -> HeadOutput:
    """Flatten a head's per-scale maps ``(N, 4 + C, H_l, W_l)`` into one :class:`HeadOutput`.

    Raises:
        ConfigError: The maps disagree in batch size or channels, or have fewer than 5 channels.
    """
    if isinstance(levels, torch.Tensor):
        levels = [levels]
    if not levels or any(not torch.is_tensor(t) or t.ndim != 4 for t in levels):
        raise ConfigError(
            "detect task: the model must return a list of maps (N, 4 + classes, H, W), one per "
            f"scale; got {[tuple(t.shape) if torch.is_tensor(t) else type(t).__name__ for t in levels]}"
        )
    channels = {int(t.shape[1]) for t in levels}
    batch = {int(t.shape[0]) for t in levels}
    if len(channels) != 1 or len(batch) != 1 or min(channels) < 5:
        raise ConfigError(
            "detect task: every scale's map needs the same batch and 4 + classes (>= 5) channels; "
            f"got {[tuple(t.shape) for t in levels]}"
        )
    if num_classes is not None and min(channels) != 4 + num_classes:
        raise ConfigError(
            f"detect task: maps have {min(channels)} channels, need 4 + {num_classes} classes"
        )
    points, cells, flat = [], [], []
    for level in levels:
        height, width = level.shape[-2:]
        ys = (torch.arange(height, device=level.device, dtype=level.dtype) + 0.5) / height
        xs = (torch.arange(width, device=level.device, dtype=level.dtype) + 0.5) / width
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        points.append(torch.stack([grid_x, grid_y], dim=-1).reshape(-1, 2))
        cell = torch.tensor([1 / width, 1 / height], device=level.device, dtype=level.dtype)
        cells.append(cell.expand(height * width, 2))
        flat.append(level.flatten(2).transpose(1, 2))  # (N, H*W, 4 + C)
    points_all, cells_all = torch.cat(points), torch.cat(cells)
    values = torch.cat(flat, dim=1)
    distances = F.softplus(values[..., :4]) * cells_all.repeat(1, 2)
    return HeadOutput(points_all, cells_all, distances, values[..., 4:])


def box_iou(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU of ``(M, 4)`` and ``(K, 4)`` boxes: ``(M, K)``."""
    area1 = (first[:, 2:] - first[:, :2]).clamp(min=0).prod(1)
    area2 = (second[:, 2:] - second[:, :2]).clamp(min=0).prod(1)
    low = torch.maximum(first[:, None, :2], second[None, :, :2])
    high = torch.minimum(first[:, None, 2:], second[None, :, 2:])
    inter = (high - low).clamp(min=0).prod(2)
    return inter / (area1[:, None] + area2[None, :] - inter).clamp(min=1e-9)


def aligned_iou(
    first: torch.Tensor, second: torch.Tensor, *, generalized: bool = False
) -> torch.Tensor:
    """IoU (or generalized IoU, Rezatofighi et al. 2019) of matching rows of ``(..., 4)`` boxes."""
    area1 = (first[..., 2:] - first[..., :2]).clamp(min=0).prod(-1)
    area2 = (second[..., 2:] - second[..., :2]).clamp(min=0).prod(-1)
    low = torch.maximum(first[..., :2], second[..., :2])
    high = torch.minimum(first[..., 2:], second[..., 2:])
    inter = (high - low).clamp(min=0).prod(-1)
    union = (area1 + area2 - inter).clamp(min=1e-9)
    iou = inter / union
    if not generalized:
        return iou
    hull = (
        (
            torch.maximum(first[..., 2:], second[..., 2:])
            - torch.minimum(first[..., :2], second[..., :2])
        )
        .clamp(min=0)
        .prod(-1)
        .clamp(min=1e-9)
    )
    return iou - (hull - union) / hull


def nms(
    boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """Greedy non-maximum suppression within each class; indices kept, best score first.

    Args:
        boxes: ``(M, 4)``; scores: ``(M,)``; classes: ``(M,)`` integer classes.
        iou_threshold: A box is dropped when it overlaps a kept box of its class by more than this.
    """
    order = scores.argsort(descending=True)
    boxes, classes = boxes[order], classes[order]
    overlap = box_iou(boxes, boxes) > iou_threshold
    overlap &= classes[:, None] == classes[None, :]
    suppressed = torch.zeros(len(order), dtype=torch.bool, device=boxes.device)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= overlap[i]
    return order[torch.tensor(keep, dtype=torch.long, device=boxes.device)]
