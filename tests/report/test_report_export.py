import dataclasses
import json

import pytest
import torch
from torch import nn

from filterprune.report import check_torch_export, check_torchscript, export_onnx


def test_onnx_export_matches_pytorch(tiny, tiny_input, tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    tiny.train()
    report = export_onnx(tiny, tiny_input, tmp_path / "onnx" / "tiny.onnx", repeats=5)
    assert tiny.training
    assert report.checked and report.matches
    assert report.max_abs_diff is not None and report.max_abs_diff < 1e-4
    assert report.ort_latency_ms is not None and report.ort_latency_ms > 0 and report.ort_runs == 5
    assert report.exporter in ("torchscript", "dynamo") and isinstance(report.opset, int)
    assert report.size_bytes > 2690 * 4  # holds the weights
    json.dumps(dataclasses.asdict(report))


def test_torch_export_and_torchscript_on_tiny_net(tiny, tiny_input):
    assert check_torch_export(tiny, tiny_input)
    assert check_torchscript(tiny, tiny_input)


def test_torch_export_reports_data_dependent_control_flow():
    class Branchy(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2 if x.sum() > 0 else x - 1

    assert not check_torch_export(Branchy(), torch.ones(1, 3))
