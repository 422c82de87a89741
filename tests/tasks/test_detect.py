"""The detect task: head format, loss, decoding, COCO mAP through the optional extra."""

from __future__ import annotations

import importlib
import math

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from filterprune.errors import ConfigError, DataError, MissingDependencyError
from filterprune.tasks import decode, get_task, mean_average_precision
from filterprune.tasks.boxes import aligned_iou, box_iou, flatten_levels, nms
from filterprune.tasks.chance import chance_warning

CLASSES = 3
SHAPES = ((8, 8), (4, 4))


def perfect_levels(boxes: torch.Tensor, classes: torch.Tensor, *, logit: float = 8.0):
    """Maps whose nearest point of the finest scale predicts each box exactly, with its class."""
    levels = [torch.full((1, 4 + CLASSES, h, w), -8.0) for h, w in SHAPES]
    levels[1][:, :4] = 0.0
    height, width = SHAPES[0]
    for (x1, y1, x2, y2), label in zip(boxes.tolist(), classes.tolist(), strict=True):
        j, i = int((x1 + x2) / 2 * width), int((y1 + y2) / 2 * height)
        cx, cy = (j + 0.5) / width, (i + 0.5) / height
        cells = [(cx - x1) * width, (cy - y1) * height, (x2 - cx) * width, (y2 - cy) * height]
        levels[0][0, :4, i, j] = torch.tensor([math.log(math.expm1(c)) for c in cells])
        levels[0][0, 4 + label, i, j] = logit
    return levels


def target_rows(boxes: torch.Tensor, classes: torch.Tensor, rows: int = 4) -> torch.Tensor:
    out = torch.zeros(1, rows, 5)
    out[0, :, 0] = -1
    out[0, : len(boxes), 0] = classes.float()
    out[0, : len(boxes), 1:] = boxes
    return out


BOXES = torch.tensor([[0.1, 0.1, 0.45, 0.5], [0.55, 0.3, 0.9, 0.95]])
LABELS = torch.tensor([2, 0])


def test_flatten_levels_places_points_at_cell_centres_and_decodes_distances() -> None:
    levels = perfect_levels(BOXES, LABELS)
    head = flatten_levels(levels)
    assert head.points.shape == (64 + 16, 2) and head.logits.shape == (1, 80, CLASSES)
    assert torch.allclose(head.points[0], torch.tensor([1 / 16, 1 / 16]))
    assert torch.allclose(head.points[64], torch.tensor([1 / 8, 1 / 8]))
    found = decode(levels, score_threshold=0.5)[0]
    order = found["labels"].argsort(descending=True)
    assert torch.allclose(found["boxes"][order], BOXES, atol=1e-5)
    assert found["labels"][order].tolist() == [2, 0]


def test_box_geometry_by_hand() -> None:
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [4.0, 4.0, 5.0, 5.0]])
    assert torch.allclose(box_iou(a, b), torch.tensor([[1 / 7, 0.0]]))
    # GIoU of a and b[0]: IoU 1/7, hull 9, union 7 -> 1/7 - 2/9
    assert torch.allclose(aligned_iou(a, b[:1], generalized=True), torch.tensor([1 / 7 - 2 / 9]))
    boxes = torch.tensor([[0.0, 0, 1, 1], [0.05, 0, 1, 1], [0, 0, 1, 1]])
    kept = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), torch.tensor([0, 0, 1]), 0.5)
    assert kept.tolist() == [0, 2]  # the overlapping box of the same class goes; class 1 stays


def test_loss_is_lower_for_the_right_maps_and_ignores_padding_rows() -> None:
    task = get_task("detect")
    target = target_rows(BOXES, LABELS)
    good = task.loss(perfect_levels(BOXES, LABELS), target)
    wrong_class = task.loss(perfect_levels(BOXES, torch.tensor([1, 1])), target)
    shifted = task.loss(perfect_levels(BOXES.roll(1, 0), LABELS), target)
    assert torch.isfinite(good) and good < wrong_class and good < shifted
    empty = torch.full((1, 4, 5), -1.0)
    assert torch.isfinite(task.loss(perfect_levels(BOXES, LABELS), empty))


def test_loss_trains_the_maps_towards_the_boxes() -> None:
    torch.manual_seed(0)
    task = get_task("detect")
    levels = [torch.randn(1, 4 + CLASSES, h, w, requires_grad=True) for h, w in SHAPES]
    target = target_rows(BOXES, LABELS)
    optimizer = torch.optim.Adam(levels, lr=0.1)
    first = task.loss(levels, target).item()
    for _ in range(60):
        optimizer.zero_grad()
        task.loss(levels, target).backward()
        optimizer.step()
    assert task.loss(levels, target).item() < 0.5 * first
    pytest.importorskip("faster_coco_eval")
    found = decode([t.detach() for t in levels])
    truth = [{"boxes": BOXES, "labels": LABELS}]
    assert mean_average_precision(found, truth)["map50"] == pytest.approx(1.0)


def test_map_of_exact_wrong_and_missing_detections() -> None:
    pytest.importorskip("faster_coco_eval")
    truth = [{"boxes": BOXES, "labels": LABELS}]
    exact = decode(perfect_levels(BOXES, LABELS))
    assert mean_average_precision(exact, truth) == pytest.approx(
        {"map": 1.0, "map50": 1.0, "map75": 1.0}
    )
    wrong = decode(perfect_levels(BOXES, torch.tensor([1, 1])))
    assert mean_average_precision(wrong, truth)["map"] == pytest.approx(0.0)
    # one of two objects found: class 2 has AP 1, class 0 has AP 0
    half = [{k: v[exact[0]["labels"] == 2] for k, v in exact[0].items()}]
    assert mean_average_precision(half, truth)["map"] == pytest.approx(0.5)


def test_evaluate_reports_map_as_the_primary_metric() -> None:
    pytest.importorskip("faster_coco_eval")
    task = get_task("detect")
    assert task.primary_metric == "map" and task.higher_is_better

    class Fixed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(()))

        def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
            return [
                t.expand(len(x), -1, -1, -1) * self.scale for t in perfect_levels(BOXES, LABELS)
            ]

    data = TensorDataset(torch.zeros(3, 1, 4, 4), target_rows(BOXES, LABELS).expand(3, -1, -1))
    metrics = task.evaluate(Fixed(), DataLoader(data, batch_size=2))
    assert metrics["map"] == pytest.approx(1.0) and metrics["map50"] == pytest.approx(1.0)
    assert set(metrics) == {"map", "map50", "map75", "loss"}


def test_a_missing_extra_names_what_to_install(monkeypatch) -> None:
    real = importlib.import_module

    def without_coco(name: str, *args, **kwargs):
        if name.startswith(("faster_coco_eval", "pycocotools")):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", without_coco)
    with pytest.raises(MissingDependencyError, match=r"filterprune\[detect\]"):
        get_task("detect").make_meter()


def test_bad_outputs_and_targets_are_named() -> None:
    task = get_task("detect")
    with pytest.raises(ConfigError, match="one per scale"):
        task.loss(torch.zeros(2, 10), torch.zeros(2, 4, 5))
    with pytest.raises(DataError, match=r"\(N, rows, 5\)"):
        task.loss(perfect_levels(BOXES, LABELS), torch.zeros(1, 4))
    with pytest.raises(DataError, match="num_classes=8"):
        task.loss(perfect_levels(BOXES, LABELS), target_rows(BOXES, torch.tensor([7, 0])))
    with pytest.raises(DataError, match="fashion-mnist-det"):
        task.builtin_data()


def test_a_detector_near_zero_map_is_warned_about() -> None:
    text = chance_warning({"map": 0.001, "map50": 0.01}, None, what="the baseline", fix="Train.")
    assert text is not None and "mAP@0.5 0.010" in text
    assert chance_warning({"map": 0.3, "map50": 0.6}, None, what="x", fix="y") is None
