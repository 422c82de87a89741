"""FilterPruning in a real lightning.Trainer on CPU: prunes while training, resumes, stays exact."""

from __future__ import annotations

import copy
import csv
import subprocess
import sys

import pytest
import torch

L = pytest.importorskip("lightning")

from lightning.pytorch.callbacks import Callback, ModelCheckpoint  # noqa: E402
from lit_tiny import TinyModule, loaders, trainer_kwargs  # noqa: E402

import filterprune as fp  # noqa: E402
from filterprune.config import Ranking, Selection  # noqa: E402
from filterprune.integrations.lightning import (  # noqa: E402
    FilterPruning,
    apply_checkpoint_plan,
)
from filterprune.testing import assert_equivalent  # noqa: E402


class Snapshots(Callback):
    """Copies the network at every epoch end (placed before and after FilterPruning)."""

    def __init__(self) -> None:
        self.models: list[torch.nn.Module] = []

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.models.append(copy.deepcopy(pl_module.model))


class PlanSteps(Callback):
    """Records each step's plan and whether the optimizer holds the network's parameters."""

    def __init__(self, pruning: FilterPruning) -> None:
        self.pruning = pruning
        self.plans: list = []
        self.optimizer_ok: list[bool] = []
        self.lrs: list[float] = []

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.plans.append(self.pruning.last_plan)
        held = {id(p) for g in trainer.optimizers[0].param_groups for p in g["params"]}
        self.optimizer_ok.append(held == {id(p) for p in pl_module.parameters()})
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("lightning")
    torch.manual_seed(0)
    module = TinyModule()
    pruning = FilterPruning(
        amount=0.25, every_n_epochs=1, max_prunings=2, monitor="val_loss", module="model"
    )
    before, after, steps = Snapshots(), Snapshots(), PlanSteps(pruning)
    checkpoint = ModelCheckpoint(dirpath=str(tmp_path / "ckpt"), save_last=True)
    trainer = L.Trainer(
        max_epochs=3,
        callbacks=[before, pruning, after, steps, checkpoint],
        **trainer_kwargs(tmp_path),
    )
    train, val = loaders()
    trainer.fit(module, train, val)
    return dict(
        tmp_path=tmp_path,
        module=module,
        pruning=pruning,
        before=before,
        after=after,
        steps=steps,
        trainer=trainer,
    )


def test_filters_are_removed_for_real_and_macs_drop(trained):
    pruning, module = trained["pruning"], trained["module"]
    assert [h["step"] for h in pruning.history] == [1, 2]  # max_prunings stops the third epoch
    assert [h["epoch"] for h in pruning.history] == [0, 1]
    original = pruning.original
    macs = [h["macs"] for h in pruning.history]
    assert original["macs"] > macs[0] > macs[1]
    assert module.model.features[0].out_channels < 8
    assert module.model.features[4].out_channels < 12
    x = torch.randn(1, 3, 12, 12)
    counts = fp.count(module.model, x)
    assert (counts.params, counts.macs) == (pruning.history[-1]["params"], macs[-1])
    assert all("val_loss" in h for h in pruning.history)


def test_each_step_matches_the_masked_original(trained):
    before, after, steps = trained["before"], trained["after"], trained["steps"]
    x = torch.randn(4, 3, 12, 12)
    for epoch in (0, 1):
        original, pruned, plan = before.models[epoch], after.models[epoch], steps.plans[epoch]
        assert plan is not None and plan.num_removed > 0
        with torch.no_grad():  # the original's output depends on its input: the check has signal
            out = original.eval()(x)
            assert (out - original(torch.randn_like(x))).abs().max() > 1e-2 * out.abs().max()
        assert_equivalent(original, pruned, plan, x, atol=1e-5)


def test_optimizer_and_scheduler_continue_on_the_smaller_model(trained):
    steps = trained["steps"]
    assert all(steps.optimizer_ok)
    # StepLR halves the rate every epoch (stepped before the epoch-end hooks); a scheduler
    # rebuilt from scratch would restart at 0.05 after each pruning step
    assert steps.lrs == pytest.approx([0.025, 0.0125, 0.00625])
    assert trained["trainer"].optimizers[0].param_groups[0]["lr"] == pytest.approx(0.05 / 8)


def test_pruning_steps_are_logged(trained):
    files = list((trained["tmp_path"] / "logs").rglob("metrics.csv"))
    assert len(files) == 1
    rows = [r for r in csv.DictReader(files[0].open()) if r.get("prune/macs")]
    macs = [float(r["prune/macs"]) for r in rows]
    assert macs == [float(h["macs"]) for h in trained["pruning"].history]
    assert all(float(r["prune/removed"]) > 0 and r["prune/params"] for r in rows)


def test_checkpoint_of_pruned_model_loads_into_a_fresh_module(trained):
    path = trained["tmp_path"] / "ckpt" / "last.ckpt"
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    assert "filterprune" in checkpoint
    fresh = TinyModule()
    plan = apply_checkpoint_plan(fresh, checkpoint)
    assert plan is not None and plan.to_dict() == trained["pruning"].plan.to_dict()
    fresh.load_state_dict(checkpoint["state_dict"])  # strict: every shape matches
    x = torch.randn(2, 3, 12, 12)
    with torch.no_grad():
        assert torch.equal(fresh.eval()(x), trained["module"].eval()(x))
    # a second call (the callback's and the module's own hook) changes nothing
    again = apply_checkpoint_plan(fresh, checkpoint)
    assert again.to_dict() == plan.to_dict()
    assert fp.param_count(fresh) == fp.param_count(trained["module"])


def test_trainer_resumes_from_a_pruned_checkpoint(trained, tmp_path):
    path = trained["tmp_path"] / "ckpt" / "last.ckpt"
    fresh = TinyModule()
    pruning = FilterPruning(amount=0.25, every_n_epochs=1, max_prunings=3, module="model")
    trainer = L.Trainer(max_epochs=4, callbacks=[pruning], **trainer_kwargs(tmp_path))
    train, val = loaders()
    trainer.fit(fresh, train, val, ckpt_path=str(path))
    # the plan was applied before the weights loaded, and pruning went on from step 3
    assert [h["step"] for h in pruning.history] == [1, 2, 3]
    assert pruning.history[2]["epoch"] == 3
    assert pruning.history[2]["macs"] < trained["pruning"].history[-1]["macs"]
    assert pruning.original == trained["pruning"].original
    first = trained["pruning"].plan
    assert pruning.plan.to_dict() == first.then(pruning.last_plan).to_dict()


def test_callback_checks_its_options():
    with pytest.raises(ValueError, match="amount must be a fraction"):
        FilterPruning(amount=1.5)
    with pytest.raises(ValueError, match="needs ranking passes"):
        FilterPruning(criterion="apoz")
    with pytest.raises(ValueError, match="use macs or params targets"):
        FilterPruning(targets=["latency<=3"])
    with pytest.raises(ValueError, match="every_n_epochs must be an int >= 1"):
        FilterPruning(every_n_epochs=0)


def test_callback_takes_the_selection_and_ranking_that_prune_takes():
    assert FilterPruning().selection == Selection(amount=0.1)  # the callback's defaults
    assert FilterPruning().ranking == Ranking(criterion="taylor")
    flat = FilterPruning(amount=0.25, scope="global", round_to=4, criterion="l1", flops_reg=1e-3)
    nested = FilterPruning(
        selection=Selection(amount=0.25, scope="global", round_to=4),
        ranking=Ranking(criterion="l1", flops_reg=1e-3),
    )
    assert (flat.selection, flat.ranking) == (nested.selection, nested.ranking)
    assert FilterPruning(selection=Selection(amount=0.2), amount=0.3).selection.amount == 0.3
    assert FilterPruning(ranking_batches=5).ranking.batches == 5
    with pytest.raises(ValueError, match="amount must be a fraction"):
        FilterPruning(selection=Selection(amount=0.0))


def test_import_filterprune_does_not_import_lightning():
    code = (
        "import sys, filterprune, filterprune.integrations; "
        "print(sorted(m for m in ('lightning', 'pytorch_lightning') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
