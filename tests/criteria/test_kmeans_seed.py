"""KMeans as Ridurre users know it: convolutions only unless asked, no score plot."""

from __future__ import annotations

import pytest
import torch

import filterprune as fp
from filterprune.loop import PruneConfig, run_pruning
from filterprune.models import create_model

pytest.importorskip("sklearn")


def _vgg():
    torch.manual_seed(0)
    return create_model("vgg16_bn", width=1 / 16, head="cifar", num_classes=10)


X = torch.randn(1, 3, 32, 32)


def test_kmeans_prunes_convolutions_only_by_default():
    model = _vgg()
    plan = fp.prune(model, X, amount=0.25, scope="per_group", criterion="kmeans")
    pruned = set(plan.removed_outputs)
    assert pruned and all(name.startswith("features.") for name in pruned)
    assert model.classifier[0].out_features == _vgg().classifier[0].out_features
    every_layer = fp.Selection(amount=0.25, scope="per_group", layer_types=())
    opted = fp.prune(
        _vgg(), X, selection=every_layer, criterion="kmeans", criterion_options={"linear": True}
    )
    assert any(name.startswith("classifier.") for name in opted.removed_outputs)


def test_kmeans_runs_draw_no_scores_plot(tmp_path):
    pytest.importorskip("matplotlib")
    from filterprune.report.run_report import write_run_report

    for criterion in ("kmeans", "l1"):
        config = PruneConfig(criterion=criterion, amount=0.2, finetune=0, max_iterations=1)
        run_pruning(_vgg(), X, config=config, run_dir=tmp_path / criterion, progress=False)
        write_run_report(tmp_path / criterion)
    assert not list((tmp_path / "kmeans" / "report").glob("scores*"))
    assert list((tmp_path / "l1" / "report").glob("scores*"))  # the check can fail
