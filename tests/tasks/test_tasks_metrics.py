"""Metrics against hand-computed values, including the per-image averaging over all batches."""

import pytest
import torch

from filterprune.tasks import (
    ClassificationMeter,
    SegmentationMeter,
    accuracy,
    dice_per_image,
    iou_per_image,
    topk_accuracy,
)


def _m(rows: list[list[int]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32).unsqueeze(0)  # (1, H, W)


# (prediction, target, dice, iou) on 2x2 masks, all computed by hand.
CASES = {
    "partial": (_m([[1, 1], [0, 0]]), _m([[1, 0], [0, 0]]), 2 / 3, 1 / 2),
    "both_empty": (_m([[0, 0], [0, 0]]), _m([[0, 0], [0, 0]]), 1.0, 1.0),
    "pred_empty": (_m([[0, 0], [0, 0]]), _m([[1, 1], [1, 1]]), 0.0, 0.0),
    "target_empty": (_m([[0, 1], [0, 0]]), _m([[0, 0], [0, 0]]), 0.0, 0.0),
    "identical": (_m([[0, 1], [1, 0]]), _m([[0, 1], [1, 0]]), 1.0, 1.0),
    "overlap_2_of_3": (_m([[1, 1], [1, 0]]), _m([[0, 1], [1, 1]]), 2 / 3, 1 / 2),
}


def _batch(*names: str) -> tuple[torch.Tensor, torch.Tensor]:
    preds = torch.stack([CASES[n][0] for n in names])  # (B, 1, 2, 2) probabilities
    targets = torch.stack([CASES[n][1] for n in names])
    return preds, targets


def test_dice_and_iou_per_image_hand_values():
    names = list(CASES)
    preds, targets = _batch(*names)
    dice = dice_per_image(preds, targets, from_logits=False)
    iou = iou_per_image(preds, targets, from_logits=False)
    assert dice.shape == iou.shape == (len(names),)
    torch.testing.assert_close(dice, torch.tensor([CASES[n][2] for n in names]))
    torch.testing.assert_close(iou, torch.tensor([CASES[n][3] for n in names]))


def test_logits_are_thresholded_through_sigmoid():
    preds, targets = _batch("partial", "overlap_2_of_3")
    logits = torch.where(preds > 0, 4.0, -4.0)
    torch.testing.assert_close(dice_per_image(logits, targets), torch.tensor([2 / 3, 2 / 3]))
    # (N, H, W) works too; threshold is strict: p = 0.5 is background.
    half = torch.full((1, 2, 2), 0.5)
    assert dice_per_image(half, torch.zeros(1, 2, 2), from_logits=False).item() == 1.0


def test_eps_smoothing_and_shape_errors():
    preds, targets = _batch("pred_empty")
    assert dice_per_image(preds, targets, from_logits=False, eps=1.0).item() == pytest.approx(1 / 5)
    with pytest.raises(ValueError, match="same shape"):
        dice_per_image(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 5))
    with pytest.raises(ValueError, match="one channel"):
        iou_per_image(torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 4))


def test_segmentation_meter_averages_every_image_of_every_batch():
    # Three batches of sizes 2, 3, 1. Images beyond the first of a batch matter: the old seed
    # (first image only, divided by batches - 1) would report (2/3 + 1 + 1) / 2 = 4/3.
    meter = SegmentationMeter(from_logits=False)
    batches = [
        ("partial", "pred_empty"),
        ("identical", "pred_empty", "overlap_2_of_3"),
        ("both_empty",),
    ]
    for names in batches:
        meter.update(*_batch(*names))
    result = meter.compute()
    assert meter.count == 6
    assert result["dice"] == pytest.approx((2 / 3 + 0 + 1 + 0 + 2 / 3 + 1) / 6)  # 5/9
    assert result["iou"] == pytest.approx((1 / 2 + 0 + 1 + 0 + 1 / 2 + 1) / 6)  # 1/2
    assert "loss" not in result


def test_meter_weights_loss_by_batch_size_and_resets():
    meter = SegmentationMeter(from_logits=False)
    meter.update(*_batch("partial", "identical"), loss=1.0)
    meter.update(*_batch("both_empty"), loss=torch.tensor(4.0))
    assert meter.compute()["loss"] == pytest.approx((2 * 1.0 + 4.0) / 3)
    meter.reset()
    with pytest.raises(ValueError, match="no samples"):
        meter.compute()


LOGITS = torch.tensor([[3.0, 1.0, 0.0], [0.0, 1.0, 2.0], [0.0, 5.0, 1.0], [2.0, 3.0, 1.0]])
TARGETS = torch.tensor([0, 1, 1, 2])


def test_accuracy_and_topk_hand_values():
    assert accuracy(LOGITS, TARGETS) == pytest.approx(0.5)  # rows 0 and 2 correct
    assert topk_accuracy(LOGITS, TARGETS, k=1) == pytest.approx(0.5)
    assert topk_accuracy(LOGITS, TARGETS, k=2) == pytest.approx(0.75)  # row 3's target is last
    assert topk_accuracy(LOGITS, TARGETS, k=3) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="k must be in"):
        topk_accuracy(LOGITS, TARGETS, k=4)
    with pytest.raises(ValueError, match=r"logits \(N, C\)"):
        accuracy(LOGITS[0], TARGETS)


def test_classification_meter_over_uneven_batches():
    meter = ClassificationMeter(topk=(2, 5))
    meter.update(LOGITS[:3], TARGETS[:3], loss=0.5)
    meter.update(LOGITS[3:], TARGETS[3:], loss=2.0)
    result = meter.compute()
    assert set(result) == {"accuracy", "top2", "loss"}  # top5 skipped: only 3 classes
    assert result["accuracy"] == pytest.approx(0.5)
    assert result["top2"] == pytest.approx(0.75)
    assert result["loss"] == pytest.approx((3 * 0.5 + 2.0) / 4)
