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
    plan = fp.prune(model, X, amount=0.25, criterion="kmeans")
    pruned = set(plan.removed_outputs)
    assert pruned and all(name.startswith("features.") for name in pruned)
    assert model.classifier[0].out_features == _vgg().classifier[0].out_features
    opted = fp.prune(_vgg(), X, amount=0.25, criterion="kmeans", criterion_options={"linear": True})
    assert any(name.startswith("classifier.") for name in opted.removed_outputs)


def test_kmeans_runs_write_no_scores_to_plot(tmp_path):
    config = PruneConfig(criterion="kmeans", amount=0.2, finetune=0, max_iterations=1)
    run_pruning(_vgg(), X, config=config, run_dir=tmp_path / "km", progress=False)
    assert not list((tmp_path / "km").glob("iter_*/scores.json"))
    config = PruneConfig(criterion="l1", amount=0.2, finetune=0, max_iterations=1)
    run_pruning(_vgg(), X, config=config, run_dir=tmp_path / "l1", progress=False)
    assert list((tmp_path / "l1").glob("iter_*/scores.json"))  # the check can fail
