"""Every built-in model: prune, check against the masked original, rebuild from the plan."""

import copy

import pytest
import torch

import filterprune as fp
from filterprune.models import create_model, list_models
from filterprune.testing import max_difference, randomize_norms

TINY = {
    "vgg16": dict(width=1 / 16, head="cifar", num_classes=10),
    "vgg16_bn": dict(width=1 / 16, head="cifar", num_classes=10),
    "resnet18": dict(width=1 / 16, stem="cifar", num_classes=10),
    "resnet34": dict(width=1 / 16, stem="cifar", num_classes=10),
    "resnet50": dict(width=1 / 16, stem="cifar", num_classes=10),
    "resnet101": dict(width=1 / 16, stem="cifar", num_classes=10),
    "resnet152": dict(width=1 / 16, stem="cifar", num_classes=10),
    "mobilenet_v2": dict(width=0.25, small_input=True, num_classes=10),
    "densenet_tiny": dict(num_classes=10, growth_rate=4),
    "unet": dict(base=4, num_classes=2),
    "yolo_tiny": dict(base=8, num_classes=3),
}
EXTRA = {
    "unet_bilinear": ("unet", dict(base=4, num_classes=2, bilinear=True), (1, 3, 36, 44)),
    "vgg16_bn_imagenet_head": ("vgg16_bn", dict(width=1 / 16, head="imagenet"), (1, 3, 64, 64)),
}
CASES = {n: (n, kw, (2, 3, 32, 32)) for n, kw in TINY.items()} | EXTRA


def test_every_registered_model_is_covered():
    assert set(TINY) == set(list_models())


@pytest.mark.parametrize("case", sorted(CASES))
def test_zoo_prunes_exactly(case):
    name, kwargs, shape = CASES[case]
    model = randomize_norms(create_model(name, **kwargs)).eval()
    x = torch.randn(*shape)
    original = copy.deepcopy(model)
    graph = fp.analyze(model, x)
    assert graph.prunable, graph.report()
    assert not any("pruning a copy showed" in r for g in graph.frozen for r in g.reasons), (
        graph.report()
    )
    plan = fp.prune(model, x, amount=0.4, criterion="l1", graph=graph, round_to=2)
    assert fp.param_count(model) < fp.param_count(original)
    assert max_difference(original, model, plan, x) < 1e-4
    fresh = create_model(name, **kwargs)
    fp.apply_plan(fresh, fp.Plan.from_json(plan.to_json()))
    assert {k: v.shape for k, v in fresh.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()
    }
