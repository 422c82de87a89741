"""Small things the docs promise: inspect prints once, MODEL.txt says what to pass."""

from __future__ import annotations

import torch
from torch import nn

import filterprune as fp
from filterprune.loop.describe import write_model_description


def _sequential() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2)
    )


def test_inspect_returns_the_report_and_prints_nothing(capsys):
    model, x = _sequential(), torch.randn(1, 3, 8, 8)
    report = fp.inspect(model, x)
    assert capsys.readouterr().out == ""
    print(report)
    out = capsys.readouterr().out
    assert out.count("channel groups") == 1 and out.startswith("Sequential: ")
    assert repr(report) == str(report)
    assert [g.name for g in report.prunable] == ["0"]  # the graph reads through
    assert report.graph.groups == report.groups


def test_model_txt_for_a_sequential_names_your_own_function(tmp_path):
    path = write_model_description(tmp_path, _sequential(), torch.randn(1, 3, 8, 8))
    note = path.read_text()
    assert "torch.nn.modules.container:FUNCTION" not in note
    assert "--model MYMODULE:FUNCTION --trust-model-code" in note
    assert "return nn.Sequential(...)" in note
