"""Task registry, evaluation over all samples, built-in data and the finetuning loop."""

import subprocess
import sys

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from filterprune.tasks import (
    ClassificationTask,
    FinetuneConfig,
    NonFiniteLossError,
    SegmentationTask,
    builtin_data,
    get_task,
    list_tasks,
)


def test_registry():
    assert {"classify", "segment"} <= set(list_tasks())
    assert isinstance(get_task("classify"), ClassificationTask)
    seg = get_task("segment", dice_weight=0.5)
    assert isinstance(seg, SegmentationTask) and seg.primary_metric == "dice"
    assert seg.higher_is_better and seg.is_better(0.9, 0.8)
    with pytest.raises(KeyError, match="known tasks: classify, detect, segment"):
        get_task("track")


def test_segment_evaluate_covers_all_images_of_all_batches():
    # The "model" is the identity on logits, so Dice is known per image: 1, 0, 1, 0, 1.
    target = torch.zeros(5, 1, 4, 4)
    target[:, :, :2] = 1
    logits = torch.where(target > 0, 5.0, -5.0)
    logits[[1, 3]] = -5.0  # predicts nothing where the car is
    loader = DataLoader(TensorDataset(logits, target), batch_size=2)
    result = get_task("segment").evaluate(nn.Identity(), loader)
    assert result["dice"] == pytest.approx(3 / 5) and result["iou"] == pytest.approx(3 / 5)
    expected_loss = nn.functional.binary_cross_entropy_with_logits(logits, target).item()
    assert result["loss"] == pytest.approx(expected_loss, rel=1e-5)


def test_classify_evaluate_reports_top5_and_exact_loss():
    torch.manual_seed(0)
    logits, targets = torch.randn(7, 6), torch.randint(0, 6, (7,))
    loader = DataLoader(TensorDataset(logits, targets), batch_size=3)
    result = get_task("classify").evaluate(nn.Identity(), loader)
    assert set(result) == {"accuracy", "top5", "loss"}
    assert result["accuracy"] == pytest.approx((logits.argmax(1) == targets).float().mean().item())
    assert result["loss"] == pytest.approx(
        nn.functional.cross_entropy(logits, targets).item(), rel=1e-5
    )


def test_builtin_data():
    train, val = builtin_data("segment", seed=1, image_size=32, num_cars=10, views_per_car=3)
    assert len(train) == 24 and len(val) == 6  # 2 whole cars held out
    image, mask = train[0]
    assert image.shape == (3, 32, 32) and mask.shape == (1, 32, 32)
    train, val = builtin_data("classify", seed=0)
    assert len(train) == 1437 and len(val) == 360 and train[0][0].shape == (3, 32, 32)
    with pytest.raises(TypeError):
        builtin_data("segment", colour="red")


def _tiny_segmenter() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 1, 1),
    )


def test_finetune_lowers_segmentation_loss():
    torch.manual_seed(0)
    train, _ = builtin_data("segment", seed=0, image_size=32, num_cars=8, views_per_car=4)
    loader = DataLoader(train, batch_size=8, shuffle=True)
    task, model = get_task("segment", dice_weight=0.5), _tiny_segmenter()
    before = task.evaluate(model, loader)
    model.eval()
    steps = task.finetune(model, loader, steps=60, lr=0.02, optimizer="adam")
    after = task.evaluate(model, loader)
    assert steps == 60 and not model.training  # mode restored
    assert after["loss"] < 0.75 * before["loss"]
    assert after["dice"] > before["dice"] + 0.3


def test_finetune_epochs_counts_steps_and_lowers_classification_loss():
    torch.manual_seed(0)
    train, _ = builtin_data("classify", seed=0, image_size=8)
    subset = TensorDataset(*(t[:256] for t in train.tensors))
    loader = DataLoader(subset, batch_size=32, shuffle=True)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
    task = get_task("classify")
    before = task.evaluate(model, loader)["loss"]
    assert task.finetune(model, loader, epochs=3, lr=0.05, progress=True) == 3 * len(loader)
    after = task.evaluate(model, loader)
    assert after["loss"] < 0.5 * before and after["accuracy"] > 0.8


def test_nan_loss_raises_naming_the_step():
    inputs = torch.randn(6, 4)
    inputs[4] = float("nan")  # third batch of two
    loader = DataLoader(TensorDataset(inputs, torch.zeros(6, dtype=torch.long)), batch_size=2)
    model = nn.Linear(4, 3)
    with pytest.raises(NonFiniteLossError, match="at step 3") as info:
        get_task("classify").finetune(model, loader, steps=5, lr=0.01)
    assert isinstance(info.value, FloatingPointError) and info.value.step == 3
    assert torch.isfinite(model.weight).all()  # the NaN step was not applied


def test_finetune_config_validation():
    with pytest.raises(ValueError, match="exactly one of steps or epochs"):
        FinetuneConfig(steps=3, epochs=1)
    with pytest.raises(ValueError, match="exactly one of steps or epochs"):
        FinetuneConfig()
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        FinetuneConfig(steps=1, optimizer="rmsprop")
    with pytest.raises(
        ValueError, match=r"FinetuneConfig\.lr: need a finite number in \(0, 1e\+30\], got 0"
    ):
        FinetuneConfig(steps=1, lr=0.0)


def test_wrong_output_shapes_have_clear_errors():
    loader = DataLoader(
        TensorDataset(torch.randn(2, 3, 4, 4), torch.zeros(2, 1, 4, 4)), batch_size=2
    )
    with pytest.raises(ValueError, match="one-channel logits"):
        get_task("segment").evaluate(nn.Conv2d(3, 2, 1), loader)
    with pytest.raises(ValueError, match=r"\(N, num_classes\)"):
        get_task("classify").evaluate(nn.Identity(), loader)


def test_import_is_lean():
    code = (
        "import sys, filterprune.tasks; "
        "bad = [m for m in ('PIL', 'sklearn', 'torchvision') if m in sys.modules]; "
        "assert not bad, bad"
    )
    env_path = ":".join(p for p in sys.path if p)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": env_path}
    )
    assert result.returncode == 0, result.stderr


def _rates(schedule: str, monkeypatch, **budget) -> list[float]:
    """The learning rate of every step of a finetune with ``schedule``."""
    from filterprune.tasks import trainer

    made, rates = [], []
    make = trainer.FinetuneConfig.make_optimizer

    def capture(self, params):
        made.append(make(self, params))
        return made[-1]

    def loss_fn(output, target):
        rates.append(made[-1].param_groups[0]["lr"])
        return nn.functional.cross_entropy(output, target)

    monkeypatch.setattr(trainer.FinetuneConfig, "make_optimizer", capture)
    data = TensorDataset(torch.randn(8, 3), torch.randint(0, 2, (8,)))
    config = FinetuneConfig(lr=0.1, schedule=schedule, **budget)
    trainer.finetune(
        nn.Linear(3, 2), DataLoader(data, batch_size=2), loss_fn=loss_fn, config=config
    )
    return rates


def test_cosine_schedule_decays_the_rate_to_zero_over_the_budget(monkeypatch):
    assert _rates("constant", monkeypatch, steps=10) == [0.1] * 10
    for budget in ({"steps": 10}, {"epochs": 3}):  # 10 steps; 3 passes of 4 batches
        rates = _rates("cosine", monkeypatch, **budget)
        assert rates[0] == pytest.approx(0.1)
        assert all(a > b for a, b in zip(rates, rates[1:], strict=False))  # decreasing
        assert rates[-1] < 0.006  # the last step is close to 0
        half = len(rates) // 2  # half way the cosine is at half the rate
        assert rates[half] == pytest.approx(0.05, abs=0.01)


def test_cosine_schedule_needs_a_known_budget():
    with pytest.raises(Exception, match="unknown schedule 'step'"):
        FinetuneConfig(steps=1, schedule="step")
    unsized = (batch for batch in [(torch.randn(2, 3), torch.tensor([0, 1]))])
    with pytest.raises(Exception, match="schedule='cosine' needs the number of steps"):
        get_task("classify").finetune(nn.Linear(3, 2), unsized, epochs=1, schedule="cosine")


def test_task_callbacks_run_the_final_finetuning_from_final_lr_down_a_cosine(monkeypatch):
    from filterprune.loop import Budget, task_callbacks

    calls = []
    task = get_task("classify")
    monkeypatch.setattr(task, "finetune", lambda model, loader, **kw: calls.append(kw) or 0)
    hooks = task_callbacks(task, [], [], lr=1e-4, optimizer="adam", final_lr=1e-3)
    hooks.finetune(nn.Linear(2, 2), 0, Budget(5))
    hooks.finetune(nn.Linear(2, 2), 0, Budget(7, final=True))
    assert [(c["lr"], c["schedule"], c["steps"]) for c in calls] == [
        (1e-4, "constant", 5),
        (1e-3, "cosine", 7),
    ]
    calls.clear()  # without final_lr the final finetuning is like the others
    task_callbacks(task, [], [], lr=1e-4).finetune(nn.Linear(2, 2), 0, Budget(7, final=True))
    assert (calls[0]["lr"], calls[0]["schedule"]) == (1e-4, "constant")
