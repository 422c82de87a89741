"""A baseline at chance level is flagged: at the end of train, before prune spends time on it."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from filterprune.loop import PruneConfig
from filterprune.recipes import load_data, prune_saved, train_baseline
from filterprune.tasks.chance import chance_warning, warning_first_evaluation


@pytest.fixture
def warnings():
    seen: list[str] = []

    class _Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                seen.append(record.getMessage())

    handler, logger = _Keep(), logging.getLogger("filterprune.tasks")
    logger.addHandler(handler)
    yield seen
    logger.removeHandler(handler)


@pytest.mark.parametrize(
    ("accuracy", "classes", "flagged"),
    [(0.11, 10, True), (0.15, 10, True), (0.2, 10, False), (0.55, 2, True), (0.7, 2, False)],
)
def test_near_chance_means_at_most_one_and_a_half_times_chance(accuracy, classes, flagged):
    text = chance_warning({"accuracy": accuracy}, classes, what="the model", fix="Train it.")
    assert (text is not None) == flagged
    if flagged:
        assert f"chance level ({1 / classes:.3f} for {classes} classes)" in text


@pytest.mark.parametrize(("dice", "flagged"), [(0.01, True), (0.34, True), (0.5, True),
                                               (0.51, False), (0.9, False)])  # fmt: skip
def test_a_segmentation_dice_no_better_than_a_trivial_mask_is_flagged(dice, flagged):
    """The README's U-Net line once gave Dice 0.34 after 3 epochs: an all-foreground mask's."""
    text = chance_warning({"dice": dice, "iou": dice / 2}, None, what="the model", fix="Train.")
    assert (text is not None) == flagged
    if flagged:
        assert f"Dice {dice:.3f}, no better than a trivial mask" in text


@pytest.mark.slow
def test_train_flags_an_untrained_segmentation_baseline(tmp_path, warnings):
    torch.manual_seed(0)
    data = load_data("segment", limit=16, batch_size=8, image_size=32)
    done = train_baseline("unet", data, out=tmp_path / "base", steps=1, progress=False,
                          model_args={"base": 4})  # fmt: skip
    assert done.metrics["dice"] <= 0.5
    assert any("the trained unet has Dice" in w for w in warnings), warnings


def test_the_first_evaluation_is_checked_once(warnings):
    evaluate = warning_first_evaluation(
        lambda m: {"accuracy": 0.1}, torch.randn(1, 4), what="the model", fix="Train it."
    )
    model = nn.Linear(4, 10)
    evaluate(model)
    evaluate(model)
    assert len(warnings) == 1 and "near chance level (0.100 for 10 classes)" in warnings[0]


@pytest.mark.slow
def test_train_and_prune_flag_an_untrained_baseline(tmp_path, warnings):
    torch.manual_seed(0)
    data = load_data("classify", limit=32, batch_size=8)
    done = train_baseline(
        "vgg16_bn", data, out=tmp_path / "base", steps=1, progress=False,
        model_args={"width": 1 / 16, "head": "cifar"},
    )  # fmt: skip
    assert done.metrics["accuracy"] < 0.15
    assert any("the trained vgg16_bn has accuracy" in w and "Train longer" in w for w in warnings)
    warnings.clear()
    config = PruneConfig(criterion="l1", max_iterations=1, finetune=0, final_finetune=0,
                         collapse_ratio=None)  # fmt: skip
    prune_saved(tmp_path / "base", run_dir=tmp_path / "run", config=config, progress=False)
    assert any(f"the model loaded from {tmp_path / 'base'} has accuracy" in w for w in warnings)
