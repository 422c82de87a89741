"""Every built-in model, pruned, still deploys: ONNX parity with onnxruntime, torch.export and
TorchScript. Each original passes all three (the oracle in tests/graph covers pruning itself), so
a pruned model must too. Tiny widths on 16x16 inputs (32x32 for VGG's five poolings) keep it
fast; the bottleneck ResNets, and the TorchScript/torch.export checks of the models whose
structure a faster case already covers, are marked slow."""

from __future__ import annotations

import functools
import warnings

import pytest
import torch
from torch import nn

import filterprune as fp
from filterprune.models import create_model, list_models
from filterprune.report import check_torch_export, check_torchscript, export_onnx
from filterprune.testing import randomize_norms

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
CASES = {
    name: (name, kwargs, (1, 3, 32, 32) if name.startswith(("vgg", "yolo")) else (1, 3, 16, 16))
    for name, kwargs in TINY.items()
} | {
    "unet_bilinear": ("unet", dict(base=4, num_classes=2, bilinear=True), (1, 3, 36, 44)),
    # the legacy ONNX exporter needs adaptive pooling to a divisor of its input: 7x7 from 7x7
    "vgg16_bn_imagenet_head": ("vgg16_bn", dict(width=1 / 16, head="imagenet"), (1, 3, 224, 224)),
}
SLOW_ONNX = {"resnet50", "resnet101", "resnet152"}
FAST_COMPILE = {"vgg16_bn", "resnet18", "densenet_tiny", "unet_bilinear"}


def _cases(fast: set[str] | None = None, slow: set[str] = frozenset()) -> list:
    def is_slow(case: str) -> bool:
        return case in slow or (fast is not None and case not in fast)

    return [pytest.param(c, marks=pytest.mark.slow) if is_slow(c) else c for c in sorted(CASES)]


@functools.cache
def pruned(case: str) -> tuple[nn.Module, torch.Tensor]:
    """The model of ``case`` with 40 % of every group removed (L1), and its input."""
    name, kwargs, shape = CASES[case]
    torch.manual_seed(0)
    model = randomize_norms(create_model(name, **kwargs)).eval()
    x = torch.randn(*shape)
    before = fp.param_count(model)
    graph = fp.analyze(model, x, probe=False)  # the zoo oracle runs the probe
    plan = fp.prune(
        model, x, amount=0.4, criterion="l1", round_to=2, graph=graph, scope="per_group",
        layer_types=(),
    )  # fmt: skip
    assert plan.num_removed > 0 and fp.param_count(model) < before
    return model.eval(), x


def test_every_registered_model_is_covered():
    assert set(TINY) == set(list_models())


@pytest.mark.parametrize("case", _cases(slow=SLOW_ONNX))
def test_pruned_zoo_model_matches_its_onnx_export(case, tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    model, x = pruned(case)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = export_onnx(model, x, tmp_path / f"{case}.onnx", repeats=1, threads=1)
    assert report.checked and report.matches, report
    assert report.max_abs_diff < 1e-4


@pytest.mark.parametrize("case", _cases(fast=FAST_COMPILE))
def test_pruned_zoo_model_survives_torch_export_and_torchscript(case):
    model, x = pruned(case)
    assert check_torch_export(model, x, atol=1e-4)
    assert check_torchscript(model, x, atol=1e-4)
