"""Every built-in model exports to ONNX at the input size it is built for, and onnxruntime agrees.

Default heads and stems (224x224 for VGG, ResNet and MobileNetV2, 32x32 for DenseNet, 64x64 for
the U-Net and the YOLO-style detector), narrow widths to stay fast. The ImageNet-head VGG on
32x32 input is the case the legacy exporter refuses (adaptive pooling to 7x7 from 1x1); the
dynamo exporter takes over and the report says so.
"""

from __future__ import annotations

import pytest
import torch

from filterprune.models import create_model, input_shape, list_models
from filterprune.report import deployment_table, export_onnx
from filterprune.report.deploy import DeployCheck
from filterprune.testing import randomize_norms

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

NARROW = {
    "vgg16": dict(width=1 / 16),
    "vgg16_bn": dict(width=1 / 16),
    "resnet18": dict(width=1 / 16),
    "resnet34": dict(width=1 / 16),
    "resnet50": dict(width=1 / 16),
    "resnet101": dict(width=1 / 16),
    "resnet152": dict(width=1 / 16),
    "mobilenet_v2": dict(width=0.25),
    "densenet_tiny": dict(growth_rate=4),
    "unet": dict(base=4),
    "yolo_tiny": dict(base=4),  # three maps, one per scale
}
SLOW = {"resnet101", "resnet152"}


def test_every_registered_model_is_covered():
    assert set(NARROW) == set(list_models())


def _calibrated(name: str, kwargs: dict, shape: tuple[int, ...] | None):
    """The model with random affine norms and BatchNorm statistics of its own activations."""
    torch.manual_seed(0)
    model = randomize_norms(create_model(name, **kwargs))
    shape = shape or input_shape(model)
    assert shape is not None, f"{name} does not say its input size"
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batches
    with torch.no_grad():
        model.train()
        for _ in range(2):
            model(torch.randn(2, *shape[1:]))
    return model.eval(), shape


def _flat(output) -> torch.Tensor:
    """A model's output as one tensor (a detector returns a list of maps)."""
    return torch.cat([t.flatten() for t in output]) if isinstance(output, list) else output


def _export(name: str, kwargs: dict, shape: tuple[int, ...] | None, path):
    model, shape = _calibrated(name, kwargs, shape)
    x = torch.randn(*shape)
    with torch.no_grad():
        reference = _flat(model(x))
        # the output must depend on the input, or "equal" would mean nothing
        other = _flat(model(torch.randn(*shape)))
        assert (reference - other).abs().max() > 1e-2 * reference.abs().max()
    report = export_onnx(model, x, path, repeats=1, threads=1)
    scale = float(reference.abs().max())
    return report, scale


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in sorted(NARROW)]
)
def test_builtin_model_matches_onnxruntime_at_its_default_size(name, tmp_path):
    report, scale = _export(name, NARROW[name], None, tmp_path / f"{name}.onnx")
    assert report.checked, report
    assert report.max_abs_diff <= 1e-4 * max(scale, 1.0), report
    assert report.exporter in ("torchscript", "dynamo") and isinstance(report.opset, int)


def test_legacy_exporter_failure_falls_back_to_dynamo_and_says_so(tmp_path, capfd):
    pytest.importorskip("onnxscript")
    # ImageNet head (AdaptiveAvgPool2d(7)) on 32x32 input: the legacy exporter refuses it
    report, scale = _export("vgg16_bn", dict(width=1 / 16), (1, 3, 32, 32), tmp_path / "v.onnx")
    assert report.exporter == "dynamo"
    assert "torchscript" in report.fallback and "adaptive_avg_pool2d" in report.fallback
    assert report.checked and report.max_abs_diff <= 1e-4 * max(scale, 1.0)
    assert not (tmp_path / "v.onnx.data").exists()  # one self-contained file
    printed = capfd.readouterr()
    assert "Torch IR graph" not in printed.err + printed.out  # no dump of the failed attempt
    table = deployment_table([DeployCheck("original", None, None, report)])
    assert table.rows[0]["onnx_exporter"] == "dynamo"
    assert table.rows[0]["onnx_opset"] == report.opset
    assert any("legacy one failed" in note for note in table.notes)
